# Serves one GGUF model with llama.cpp's own OpenAI-compatible server (the
# xllamacpp wheel) on 127.0.0.1 only. Written by `loopvel local start`;
# arguments: GGUF path, model alias, port, threads, context tokens.
import sys
import time

import xllamacpp as xlc

path, alias, port, threads, n_ctx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
p = xlc.CommonParams()
p.model.path = path
p.model_alias = alias
p.hostnames = ["127.0.0.1"]
p.port = port
p.n_ctx = n_ctx
p.n_parallel = 1
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
p.offline = True
server = xlc.Server(p)
while True:
    time.sleep(3600)
