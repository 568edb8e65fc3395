"""Every committed comparison spec (examples/*/compare/*.yaml), and the prior experiment built on
the ones docs/results.md names, gives fairseq-train commands that fairseq's own parser accepts.

A typo in a spec costs hours: a sweep starts, and every run of the misspelt arm fails. Here each
arm's command, exactly as the runner builds it, goes through fairseq's option parser (with the
plugin's task, criterion and architecture registered) without training anything."""

import pytest

from analysis_fixtures import REPO

from addrop_fairseq.analysis import prior
from addrop_fairseq.experiment.runner import Comparison
from addrop_fairseq.experiment.spec import load_spec

SPECS = sorted(REPO.glob("examples/*/compare/*.yaml"))
PRIOR_BASES = [
    "examples/ner/compare/ner200.yaml",
    "examples/translation/compare/libreoffice-en-ro.yaml",
]


def _parse(command: list[str]):
    from fairseq import options

    parser = options.get_training_parser()
    try:
        return options.parse_args_and_arch(parser, input_args=command)
    except SystemExit as exit_:  # argparse's way of saying an option is unknown or malformed
        raise AssertionError(f"fairseq rejects: {' '.join(command)}") from exit_


def _commands(spec, tmp_path):
    runner = Comparison(spec, tmp_path / "out")
    for arm in spec.arms:
        # the runner's own command, less the interpreter and "-m fairseq_cli.train"
        yield arm, runner.train_command(arm, 1, tmp_path / "ck")[3:]


def test_the_specs_docs_results_names_are_all_here():
    names = {p.relative_to(REPO).as_posix() for p in SPECS}
    assert {
        "examples/ner/compare/ner200.yaml",
        "examples/ner/compare/ner1000.yaml",
        "examples/ner/compare/ner200-grid.yaml",
        "examples/ner/compare/plain-gap.yaml",
        "examples/ner/compare/prior-low-target.yaml",
        "examples/translation/compare/libreoffice-en-ro.yaml",
        "examples/translation/compare/libreoffice-tr-en.yaml",
    } <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_arm_of_a_committed_spec_parses(path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the specs name --user-dir and data relative to the repository
    spec = load_spec(path)
    assert spec.baseline in {arm.name for arm in spec.arms}
    for arm, command in _commands(spec, tmp_path):
        args = _parse(command)
        assert args.seed == 1 and args.user_dir == "addrop_fairseq", arm.name
        schedule = args.addrop_schedule
        assert schedule in {"off", "cross", "always"}, (arm.name, schedule)


@pytest.mark.parametrize("base", PRIOR_BASES, ids=lambda p: p.split("/")[-1])
def test_the_prior_experiment_arms_parse_with_the_values_they_mean(base, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = prior.prior_spec(prior.read_base(REPO / base), rate=0.3, layers="0", seeds=[1, 2, 3])
    parsed = {arm.name: _parse(command) for arm, command in _commands(spec, tmp_path)}
    assert parsed["none"].addrop_schedule == "off"
    for name in ("random", "low", "high"):
        args = parsed[name]
        assert (args.addrop_schedule, args.addrop_target, args.addrop_strategy) == (
            "always",
            "gold",
            name,
        )
        assert str(args.addrop_layers) == "0"
    assert (parsed["high"].addrop_p, parsed["high"].addrop_q) == (0.3, 1.0)
    assert (parsed["low"].addrop_p, parsed["low"].addrop_q) == (0.3, 1.0)
    assert parsed["random"].addrop_q == 0.3


GLUE_SPECS = sorted(REPO.glob("examples/glue/compare/*.yaml"))


@pytest.mark.parametrize("path", GLUE_SPECS, ids=lambda p: p.name)
def test_glue_specs_follow_the_protocol(path):
    """Issue 30: every GLUE run starts from the pretrained model in the resumable form, clips at
    1.0, and scores the official dev split (fairseq's test) every epoch beside the selection
    split; GA and RD differ only in the attribution."""
    spec = load_spec(path)
    train = list(spec.train)
    assert spec.report_split == "test" and spec.test == {"kind": "none"} and spec.maximize
    assert train[train.index("--finetune-from-model") + 1] == "data-bin/minilm/model.pt"
    assert train[train.index("--clip-norm") + 1] == "1.0"
    assert not any(o == "--restore-file" or o.startswith("--reset-") for o in train)
    arms = {arm.name: list(arm.options) for arm in spec.arms}
    assert arms["plain"] == ["--addrop-schedule", "off"]
    if "ga" in arms:
        attribution = arms["rd"].index("--addrop-attribution") + 1
        assert arms["rd"][attribution] == "rd" and arms["ga"][attribution] == "ga"
        assert arms["rd"][:attribution] + arms["rd"][attribution + 1:] == (
            arms["ga"][:attribution] + arms["ga"][attribution + 1:])


def test_the_glue_studies_are_all_here():
    names = {p.name for p in GLUE_SPECS}
    fewshot = {f"fewshot-{task}-{k}.yaml" for task in ("sst2", "cola") for k in (16, 64, 256)}
    assert names == fewshot | {"fewshot-cola-256-grid.yaml", "full-rte.yaml", "full-mrpc.yaml",
                               "full-cola.yaml", "full-stsb.yaml"}
