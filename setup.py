from setuptools import find_packages, setup

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
        "sacrebleu>=2.3,<3",
        "sentencepiece>=0.1.99",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
    },
)
