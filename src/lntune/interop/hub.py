"""Skins on the Hugging Face Hub: `lntune push SKIN REPO_ID` uploads one (huggingface_hub), and anything that
takes a skin folder also takes a repo id, `user/name` or `user/name@revision` (downloaded once, cached)."""
from __future__ import annotations

from pathlib import Path

from lntune.errors import SkinError
from lntune.skin import REPO, read_skin, resolve_skin  # noqa: F401 - resolve_skin is also imported from here
from lntune.spec.files import HUB_FILES
from lntune.skin_card import CARD, model_card



def push_skin(skin: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
              token: str | None = None, message: str | None = None, dry_run: str | Path | None = None) -> str:
    """Upload the skin folder (tensors, skin.json, model card, metrics) to REPO_ID; returns the commit URL.
    With `dry_run=DIR`, write exactly the files that would be uploaded to DIR instead (no network); returns DIR.

    >>> from lntune.interop import push_skin
    >>> push_skin("runs/sst2-ln", "me/sst2-ln", revision="v1")  # doctest: +SKIP
    """
    import tempfile

    if not REPO.fullmatch(repo_id) or "@" in repo_id:
        raise SkinError(f"repo id {repo_id!r}: write user/name (the revision goes in --revision)")
    meta = read_skin(skin)  # a finished, valid skin only
    if dry_run is not None:
        out = Path(dry_run)
        if out.exists() and any(out.iterdir()):
            raise SkinError(f"--dry-run {out}: the folder is not empty; name a new or empty one")
        _stage(Path(skin), out, repo_id, revision)
        return str(out)
    import huggingface_hub

    with tempfile.TemporaryDirectory(prefix="lntune-push-") as tmp:
        _stage(Path(skin), Path(tmp), repo_id, revision)
        api = huggingface_hub.HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=tmp, repo_id=repo_id, revision=revision, allow_patterns=HUB_FILES,
                                 commit_message=message or f"lntune skin: {meta.method} on {meta.base.model}")
    return str(getattr(info, "commit_url", info))


def _stage(skin: Path, out: Path, repo_id: str, revision: str | None) -> None:
    """The files a push uploads: the skin's Hub files, with the card rewritten to name the repo it goes to."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    for name in HUB_FILES:
        if name != CARD and (skin / name).is_file():
            shutil.copyfile(skin / name, out / name)
    (out / CARD).write_text(model_card(read_skin(skin), repo_id + (f"@{revision}" if revision else "")))
