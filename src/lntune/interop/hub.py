"""Skins on the Hugging Face Hub: `lntune push SKIN REPO_ID` uploads one (huggingface_hub), and anything that
takes a skin folder also takes a repo id, `user/name` or `user/name@revision` (downloaded once, cached)."""
from __future__ import annotations

from pathlib import Path

from lntune.errors import SkinError
from lntune.skin import REPO, read_skin, resolve_skin  # noqa: F401 - resolve_skin is also imported from here
from lntune.spec.files import HUB_FILES



def push_skin(skin: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
              token: str | None = None, message: str | None = None) -> str:
    """Upload the skin folder (tensors, skin.json, model card, metrics) to REPO_ID; returns the commit URL.

    >>> from lntune.interop import push_skin
    >>> push_skin("runs/sst2-ln", "me/sst2-ln", revision="v1")  # doctest: +SKIP
    """
    import huggingface_hub

    if not REPO.fullmatch(repo_id) or "@" in repo_id:
        raise SkinError(f"repo id {repo_id!r}: write user/name (the revision goes in --revision)")
    meta = read_skin(skin)  # a finished, valid skin only
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(skin), repo_id=repo_id, revision=revision, allow_patterns=HUB_FILES,
        commit_message=message or f"lntune skin: {meta.method} on {meta.base.model}",
    )
    return str(getattr(info, "commit_url", info))
