# Fetches pip's wheel from PyPI into the folder given as argv[1], checks it
# against the SHA-256 PyPI publishes, and prints its path. loopvel runs this
# with a bare interpreter that has no pip (a fresh Debian's python3), then
# runs pip from the wheel, as get-pip.py does. Standard library only.
import hashlib, json, os, sys, urllib.parse, urllib.request

INDEX = os.environ.get("LOOPVEL_PIP_JSON_URL", "https://pypi.org/pypi/pip/json")
folder = sys.argv[1]
with urllib.request.urlopen(INDEX, timeout=60) as r:
    meta = json.load(r)
wheels = [u for u in meta["urls"] if u["packagetype"] == "bdist_wheel" and u["filename"].endswith("-py3-none-any.whl")]
if not wheels:
    sys.exit(f"{INDEX} lists no pure-Python pip wheel")
w = wheels[0]
path = os.path.join(folder, w["filename"])
if not (os.path.isfile(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == w["digests"]["sha256"]):
    # A mirror may answer with addresses relative to the index.
    with urllib.request.urlopen(urllib.parse.urljoin(INDEX, w["url"]), timeout=120) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != w["digests"]["sha256"]:
        sys.exit(f"{w['url']}: SHA-256 {got} is not PyPI's {w['digests']['sha256']}")
    tmp = path + f".{os.getpid()}.part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
print(path)
