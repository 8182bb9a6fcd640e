from setuptools import find_packages, setup

setup(
    name="hfmicro",
    version="0.1.0",
    description="Pre-train tiny BERT and GPT-2 style language models from scratch on the Hugging Face stack.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["hfmicro", "hfmicro.*"]),
    package_data={"hfmicro.metrics": ["*/*.py"]},  # evaluate modules: folders loaded by path, not packages
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "transformers>=5.4,<6",  # 5.0-5.3: configs are not dataclasses yet, which @strict needs
        "datasets>=4.0",
        "tokenizers>=0.22",
        "accelerate>=1.0",
        "huggingface-hub>=1.0",
        "safetensors",
        "numpy",
        "pyarrow>=15",  # parquet corpora are read directly (data/files.py)
        "psutil>=5.8",  # process start times: the run lock and the cache wait
        "pyyaml",
        "evaluate>=0.4",  # the metrics in hfmicro/metrics are evaluate modules
        "matplotlib",  # training_curves.png
    ],
    extras_require={"test": ["pytest", "hypothesis", "tensorboard"], "tensorboard": ["tensorboard"]},
    entry_points={"console_scripts": ["hfmicro=hfmicro.cli:main"]},
)
