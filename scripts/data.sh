#!/usr/bin/env bash
# Sourced: make sure MNIST and CIFAR-10 are under $GRADBENCH_DATA (default ./data).
# From the copies in ../shared/data when they are beside the checkout (no network needed),
# else with 'gradbench data download' (needs the 'vision' extra and internet; it says so).
data_root=${GRADBENCH_DATA:-$root/data}
if ! gradbench data --data "$data_root" > /dev/null 2>&1; then
  shared="$root/../shared/data/prepare"
  if [ -x "$shared" ]; then
    echo "laying out MNIST and CIFAR-10 under $data_root from ../shared/data ..." >&2
    PYTHON="$venv/bin/python" "$shared" "$data_root" >&2
  else
    gradbench data download --data "$data_root"
  fi
fi
export GRADBENCH_DATA=$data_root
