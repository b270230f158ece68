# GPU image for training and evaluation. Build:  docker build -t hncse .
# Run (one GPU; outputs and data mounted from the host, Hub token from the environment):
#   docker run --gpus all -e HF_TOKEN -v "$PWD/outputs:/app/outputs" -v /path/to/senteval:/data/senteval \
#     hncse run_hncse.py configs/paper/bert-base-simcse.yaml --senteval_dir /data/senteval
# Several GPUs / DeepSpeed: put accelerate's options first, e.g.
#   docker run --gpus all ... hncse --config_file configs/accelerate/zero2.yaml run_hncse.py CONFIG [flags]
# The base image's CUDA build of torch satisfies requirements.txt's pin (2.13.0+cuXXX matches ==2.13.0);
# -devel because DeepSpeed compiles its CUDA ops (fused Adam, …) with nvcc the first time a config needs them.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-devel
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ninja-build git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
COPY hncse ./hncse
RUN pip install --no-cache-dir -r requirements.txt && pip install --no-cache-dir --no-deps .
COPY run_hncse.py ./
COPY configs ./configs
COPY ds_configs ./ds_configs

ENV HF_HOME=/cache/huggingface
ENTRYPOINT ["accelerate", "launch"]
CMD ["run_hncse.py", "configs/paper/bert-base-simcse.yaml"]
