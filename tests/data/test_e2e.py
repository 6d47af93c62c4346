import pytest

from lntune.data import get_task
from lntune.errors import DataError

E2E = get_task("e2e")


def test_reads_the_shared_e2e_files(data_dir):
    train, dev = E2E.load("train", data_dir), E2E.load("dev", data_dir)
    assert (len(train), len(dev)) == (4_672, 4_693)
    assert train[0]["prompt"] == "Table: name[Alimentum], area[city centre], familyFriendly[no]\nText:"
    assert train[0]["target"].startswith(" There is a place in the city centre")


def test_missing_column(tmp_path):
    folder = tmp_path / "nlg" / "e2e"
    folder.mkdir(parents=True)
    (folder / "devset.csv").write_text("mr,text\na,b\n")
    with pytest.raises(DataError, match=r"devset.csv: missing column\(s\) 'ref'"):
        E2E.load("train", tmp_path)
