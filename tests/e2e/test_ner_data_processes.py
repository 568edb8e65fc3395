"""The tests of data/test_ner_data.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_ner_data import (  # noqa: F401
    make_sentences,
    pytest,
    read_conll,
    write_conll2003,
)


@pytest.mark.slow
def test_conll_subset_command_writes_the_subset_and_names_a_short_source(tmp_path):
    from conftest import run_cli

    source = tmp_path / "train.txt"
    write_conll2003(source, make_sentences(5, seed=1))
    dest = tmp_path / "new" / "dir" / "train.txt"
    result = run_cli("addrop_fairseq.cli.conll_subset", source, 3, dest)
    assert result.stdout == f"{dest}: 3 sentences\n" and result.stderr == ""
    assert [s.words for s in read_conll(dest)] == [s.words for s in read_conll(source)[:3]]
    result = run_cli("addrop_fairseq.cli.conll_subset", source, 9, dest)
    assert result.stdout == f"{dest}: 5 sentences\n"
    assert result.stderr == f"addrop-conll-subset: {source} has only 5 sentences\n"
    failed = run_cli("addrop_fairseq.cli.conll_subset", source, 0, dest, check=False)
    assert failed.returncode == 1
    assert failed.stderr == "addrop-conll-subset: error: sentence count 0: must be at least 1\n"
