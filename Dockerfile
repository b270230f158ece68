# GPU image for training and evaluation. Build:  docker build -t hncse .
# Run (all GPUs; outputs, the Hugging Face cache and, if you have one, a local data copy mounted from the host;
# files written as your own user; the Hub token from the environment):
#   mkdir -p outputs ~/.cache/hncse-docker
#   docker run --gpus all --ipc=host --user "$(id -u):$(id -g)" -e HF_TOKEN \
#     -v "$PWD/outputs:/app/outputs" -v ~/.cache/hncse-docker:/cache \
#     hncse run_hncse.py configs/paper/bert-base-hybrid.yaml --bf16 true --fp16 false
# Several GPUs / DeepSpeed: accelerate's options first, e.g.
#   docker run ... hncse --config_file configs/accelerate/zero2.yaml --num_processes 4 run_hncse.py CONFIG [flags]
# --ipc=host: DataLoader workers and NCCL exchange tensors through shared memory, which Docker limits to 64 MB.
#
# Base: the official PyTorch image of the torch release requirements.txt pins (its CUDA build, 2.13.0+cu126,
# satisfies ==2.13.0), CUDA 12.6, -devel because DeepSpeed compiles its CUDA ops (fused Adam, …) with nvcc the first
# time a config needs them. Kernels for sm_50 to sm_90 (V100 to H100/H200); for newer cards build with
# --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.2-cudnn9-devel.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ninja-build git \
    && rm -rf /var/lib/apt/lists/*

# The image's Python is the system's (Ubuntu 24.04), whose pip refuses to install into it (PEP 668) unless told;
# a container is the environment, so install into it.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt pyproject.toml README.md LICENSE ./
COPY hncse ./hncse
# The package without resolving its requirements again (installed just before), the plots extra's matplotlib
# (pyproject.toml), so that every run draws its training_curves.png, and the peft extra's peft (LoRA on GPUs).
RUN pip install --no-cache-dir -r requirements.txt "matplotlib>=3.7" "peft>=0.17,<1" && pip install --no-cache-dir --no-deps .
COPY run_hncse.py ./
COPY configs ./configs
COPY ds_configs ./ds_configs

# Every cache in the mounted /cache (downloads, DeepSpeed's compiled ops, Triton kernels), so that they outlive the
# container and any --user can write them; HOME for whatever else writes under it.
ENV HF_HOME=/cache/huggingface \
    TORCH_EXTENSIONS_DIR=/cache/torch_extensions \
    TRITON_CACHE_DIR=/cache/triton \
    HOME=/tmp
ENTRYPOINT ["accelerate", "launch"]
CMD ["run_hncse.py", "configs/paper/bert-base-simcse.yaml"]
