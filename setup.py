"""arm_jax: a JAX/TPU-native training stack for ARM-style unified autoregressive multimodal models."""
from setuptools import find_packages, setup

setup(
    name="arm_jax",
    version="0.1.0",
    description="Unified autoregressive multimodal models (understanding, T2I, editing, GRPO) in JAX",
    packages=find_packages(include=["arm_jax", "arm_jax.*"]),
    python_requires=">=3.10",
    # Compatible ranges; requirements.txt pins the exact CPU versions that are tested together.
    install_requires=[
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.4,<0.13",
        "grain>=0.2.18,<0.3",
        "tensorflow-datasets>=4.9.10,<5",
        "array-record>=0.8.6",
        "sentencepiece>=0.2.2,<0.3",
        "tokenizers>=0.20,<1",   # Hugging Face tokenizer.json (Qwen2.5's text tokenizer)
        "ml-collections>=1.1.0,<2",
        "clu>=0.0.12",
        "tensorboardX>=2.6",
        "numpy>=2.0",
        "pillow>=10",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "safetensors>=0.4",
    ],
    extras_require={
        # Export/parity tests and the PyTorch example; only this torch build installs offline here.
        "torch": ["torch==2.13.0", "transformers==5.24.0"],
        # AOT compilation for TPU topologies on a CPU host.
        "tpu": ["jax[tpu]==0.10.2"],
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0"],
    },
    entry_points={"console_scripts": ["arm-jax=arm_jax.cli:main"]},
)
