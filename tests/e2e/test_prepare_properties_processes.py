"""The tests of data/test_prepare_properties.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_prepare_properties import (  # noqa: F401
    FIXED,
    PAIRS,
    corrupt,
    given,
    pytest,
    run_script,
    settings,
    spm_model,
    st,
    text_lines,
)


@pytest.mark.slow
@settings(max_examples=12, **FIXED)
@given(data=st.data())
def test_prepare_translation_on_damaged_files(tmp_path_factory, spm_model, data):
    root = tmp_path_factory.mktemp("translation")
    damaged = data.draw(st.sets(st.sampled_from(["en", "ro"]), max_size=2))
    sides = {}
    for index, lang in enumerate(("en", "ro")):
        content = ("\n".join(pair[index] for pair in PAIRS) + "\n").encode()
        if lang in damaged:
            content = corrupt(data, content)
        (root / f"c.{lang}").write_bytes(content)
        sides[lang] = text_lines(content)
    acceptable = (None not in sides.values() and len(sides["en"]) == len(sides["ro"]) > 4
                  and all(line.strip() for lines in sides.values() for line in lines))
    error = run_script("prepare_translation", [
        "-s", "en", "-t", "ro", "--corpus", root / "c", "--valid-size", "2", "--test-size", "2",
        "--spm-model", spm_model, "--workers", "1"], root / "out")
    if not acceptable:
        assert error is not None, "a malformed file was accepted"
        return
    assert error is None, error
    from fairseq.data import data_utils

    out = root / "out"
    written = []
    for split, count in (("train", len(sides["en"]) - 4), ("valid", 2), ("test", 2)):
        en, ro = (text_lines((out / "raw" / f"{split}.{lang}").read_bytes()) for lang in ("en", "ro"))
        assert len(en) == len(ro) == count
        written += list(zip(en, ro))
        for lang in ("en", "ro"):
            dataset = data_utils.load_indexed_dataset(str(out / "bin" / f"{split}.en-ro.{lang}"),
                                                      None, "mmap")
            assert len(dataset) == count
    assert sorted(written) == sorted(zip(sides["en"], sides["ro"]))
