# Fetches pip's wheel from PyPI into the folder given as argv[1], checks it
# against the SHA-256 that PyPI's JSON API lists for it (an integrity check
# over HTTPS, not a signature), and prints its path. loopvel runs this with a
# bare interpreter that has no pip (a fresh Debian's python3), then runs pip
# from the wheel, as get-pip.py does. Standard library only.
import glob, hashlib, json, os, platform, sys, urllib.parse, urllib.request

INDEX = os.environ.get("LOOPVEL_PIP_JSON_URL", "https://pypi.org/pypi/pip/json")
folder = sys.argv[1]
here = tuple(int(x) for x in platform.python_version_tuple()[:2])


def supports(spec):
    # pip's requires_python is a list of ">=3.9"-style clauses; a clause
    # this cannot read does not rule a release out.
    for clause in (spec or "").split(","):
        clause = clause.strip()
        if clause.startswith(">="):
            try:
                want = tuple(int(x) for x in clause[2:].split(".")[:2])
            except ValueError:
                continue
            if here < want:
                return False
    return True


def version_key(v):
    return tuple(int(x) if x.isdigit() else -1 for x in v.split("."))


def newest_cached():
    found = sorted(glob.glob(os.path.join(folder, "pip-*-py3-none-any.whl")), key=os.path.getmtime)
    return found[-1] if found else None


try:
    with urllib.request.urlopen(INDEX, timeout=30) as r:
        meta = json.load(r)
except OSError as e:
    cached = newest_cached()
    if cached:
        print(cached)
        sys.exit(0)
    sys.exit(f"{INDEX}: {e}")

wheel = None
for version in sorted(meta.get("releases", {}), key=version_key, reverse=True):
    for f in meta["releases"][version]:
        if f.get("packagetype") == "bdist_wheel" and f["filename"].endswith("-py3-none-any.whl") and not f.get("yanked"):
            if supports(f.get("requires_python")):
                wheel = f
                break
    if wheel:
        break
if wheel is None:
    wheel = next((u for u in meta.get("urls", []) if u["filename"].endswith("-py3-none-any.whl")), None)
if wheel is None:
    sys.exit(f"{INDEX} lists no pure-Python pip wheel for Python {platform.python_version()}")

path = os.path.join(folder, wheel["filename"])
digest = wheel["digests"]["sha256"]
if not (os.path.isfile(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == digest):
    # A mirror may answer with addresses relative to the index.
    with urllib.request.urlopen(urllib.parse.urljoin(INDEX, wheel["url"]), timeout=120) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        sys.exit(f"{wheel['url']}: SHA-256 {got} is not the {digest} the index lists")
    tmp = path + f".{os.getpid()}.part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
print(path)
