"""Label sets of users' classification files: one order whatever the hash seed; silent extra classes refused."""
import pytest

from lntune.data import get_task
from lntune.errors import DataError


def test_label_order_does_not_depend_on_the_hash_seed(tmp_path):
    """Two processes with different PYTHONHASHSEED read one label set in one order (issue 24, 4)."""
    import subprocess
    import sys

    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "".join(f"row {i},{lab}\n" for i, lab in enumerate(["1", "1.0", "0", "2", "10"] * 3)))
    code = ("from lntune.data import get_task; import sys; "
            f"print(get_task('local:train={train},dev={train},text=text,label=label').labels)")
    outs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": ""}, capture_output=True,
                           text=True, check=True).stdout for seed in ("0", "5", "17")}
    assert outs == {"('0', '1', '1.0', '2', '10')\n"}


@pytest.mark.parametrize("label, message", [("nan", "not a class"), ("inf", "not a class"), ("1 ", "spaces around")])
def test_labels_that_would_be_silent_extra_classes_are_refused(tmp_path, label, message):
    train = tmp_path / "t.csv"
    train.write_text(f"text,label\na,0\nb,1\nc,{label}\n")
    with pytest.raises(DataError, match=message) as e:
        get_task(f"local:train={train},dev={train},text=text,label=label")
    assert f"{train}:" in str(e.value)
