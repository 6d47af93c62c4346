"""Atomic writes leave nothing half-written; the temp files of a process killed mid-write are cleaned later."""
import os

import pytest

from lntune.durable import remove_stale, write_atomic
from lntune.errors import SkinError


def _dead_pid() -> int:
    """A process id no process has now (asked of the kernel, without starting one)."""
    for pid in range(4_000_000, 3_000_000, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid found")


def test_stale_temp_files_of_a_dead_process_go_and_a_live_ones_stay(tmp_path):
    write_atomic(tmp_path / "skin.json", b"{}")
    dead = tmp_path / f".tuned.safetensors.tmp-{_dead_pid()}"
    live = tmp_path / f".skin.json.tmp-{os.getpid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"being written")
    assert remove_stale(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and (tmp_path / "skin.json").read_bytes() == b"{}"


def test_a_folder_of_an_interrupted_run_points_at_resume(tmp_path):
    from lntune.skin import read_skin

    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    with pytest.raises(SkinError, match=r"interrupted; lntune train --resume .*run continues it"):
        read_skin(tmp_path / "run")
    with pytest.raises(SkinError, match=r"not a skin directory, or training did not finish"):
        read_skin(tmp_path)


def test_a_run_into_a_folder_with_stale_temp_files_cleans_them(tiny_dir, data_dir, tmp_path):
    from lntune.api import train_task
    from lntune.train import TrainConfig

    out = tmp_path / "skin"
    out.mkdir()
    stale = out / f".tuned.safetensors.tmp-{_dead_pid()}"
    stale.write_bytes(b"half")
    train_task("rte", str(tiny_dir("bert")), "ln", config=TrainConfig(epochs=1, batch_size=16, progress=False),
               out=out, data_dir=data_dir, train_limit=32, eval_limit=16)
    assert not stale.exists() and (out / "skin.json").is_file()
    assert not list(out.glob(".*.tmp-*"))
