"""Skins on the Hugging Face Hub: `lntune push SKIN REPO_ID` uploads one (huggingface_hub), and anything that
takes a skin folder also takes a repo id, `user/name` or `user/name@revision` (downloaded once, cached)."""
from __future__ import annotations

import re
from pathlib import Path

from lntune.errors import SkinError

REPO = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?")
# What a skin folder holds that belongs on the Hub (the checkpoint of an unfinished run does not).
FILES = ["skin.json", "tuned.safetensors", "README.md", "metrics.json", "metrics.jsonl"]


def resolve_skin(skin: str | Path) -> Path:
    """A local folder as it is; else a Hub repo id, downloaded (huggingface_hub's cache) to a local folder.

    >>> from lntune.interop.hub import resolve_skin
    >>> resolve_skin("runs/sst2-ln")  # a folder that exists, or a repo id when none does  # doctest: +SKIP
    """
    path = Path(skin)
    m = REPO.fullmatch(str(skin))
    if path.exists() or m is None:
        return path
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(m["repo"], revision=m["rev"], allow_patterns=FILES))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo or revision, no access: one line either way
        first = (str(e).splitlines() or [""])[0][:200]
        raise SkinError(f"{skin}: no such local folder, and the Hub repo {m['repo']}"
                        f"{'@' + m['rev'] if m['rev'] else ''} could not be fetched ({type(e).__name__}: {first})"
                        ) from None


def push_skin(skin: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
              token: str | None = None, message: str | None = None) -> str:
    """Upload the skin folder (tensors, skin.json, model card, metrics) to REPO_ID; returns the commit URL.

    >>> from lntune.interop import push_skin
    >>> push_skin("runs/sst2-ln", "me/sst2-ln", revision="v1")  # doctest: +SKIP
    """
    import huggingface_hub

    from lntune.skin import read_skin

    if not REPO.fullmatch(repo_id) or "@" in repo_id:
        raise SkinError(f"repo id {repo_id!r}: write user/name (the revision goes in --revision)")
    meta = read_skin(skin)  # a finished, valid skin only
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(skin), repo_id=repo_id, revision=revision, allow_patterns=FILES,
        commit_message=message or f"lntune skin: {meta['method']} on {meta['base']['model']}",
    )
    return str(getattr(info, "commit_url", info))
