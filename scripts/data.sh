#!/usr/bin/env bash
# Sourced: make sure MNIST, CIFAR-10 and the text are under $GRADBENCH_DATA (default ./data).
# MNIST and CIFAR-10 from the copies in ../shared/data when they are beside the checkout (no
# network needed), else with 'gradbench data download' (needs the 'vision' extra and internet;
# it says so). The text from Debian's fortunes package ('gradbench data text': apt-get
# download, no root).
data_root=${GRADBENCH_DATA:-$root/data}
data_status=$(gradbench data --data "$data_root" 2>/dev/null || true)
if echo "$data_status" | grep -qE "^ +(mnist|cifar10) +(missing|unreadable)"; then
  shared="$root/../shared/data/prepare"
  if [ -x "$shared" ]; then
    echo "laying out MNIST and CIFAR-10 under $data_root from ../shared/data ..." >&2
    PYTHON="$venv/bin/python" "$shared" "$data_root" >&2
  else
    gradbench data download --data "$data_root"
  fi
fi
if echo "$data_status" | grep -qE "^ +fortunes +(missing|unreadable)"; then
  echo "laying out the text (Debian's fortunes) under $data_root ..." >&2
  gradbench data text --data "$data_root" >&2
fi
export GRADBENCH_DATA=$data_root
