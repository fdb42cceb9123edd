#!/usr/bin/env bash
# The base images the project's Dockerfiles start FROM: python:3.11-slim-bookworm and
# postgres:16-bookworm.
#
#   scripts/docker_base_images.sh            # what the daemon lacks: pulled, else stand-ins
#   BASE_IMAGES=standin scripts/docker_base_images.sh   # stand-ins, never a pull
#   BASE_IMAGES=pull scripts/docker_base_images.sh      # the real images, or fail
#
# An image the daemon already has is used as it is (stand-ins are built once and reused while
# they exist; `docker rmi` one to rebuild it). Where a registry answers, `docker pull` gets the
# real images. Where none does (an air-gapped machine, this project's CI), stand-ins are built
# from Debian's archive and the script says so:
#   - radam-robustness-standin/debian:bookworm: `debootstrap --variant=minbase bookworm` from
#     the mirror the machine's apt sources name, imported with `docker import`;
#   - python:3.11-slim-bookworm: Debian's python3.11 in a venv at /usr/local (python, pip on
#     PATH as in the official image), with the host's pip configuration and CA bundle, so pip
#     in later builds reaches the package index the way the host's pip does;
#   - postgres:16-bookworm: Debian's PostgreSQL 15 behind an entrypoint that follows the
#     official image's contract (POSTGRES_USER/PASSWORD/DB, PGDATA,
#     /docker-entrypoint-initdb.d). docker/standin/ holds their Dockerfiles.
# Builds use the host's network (the daemon runs with --bridge=none): they reach Debian's
# archive and the package index, nothing else.
#
# DOCKER (default: Debian's /usr/bin/docker, else docker on PATH) and DOCKER_HOST pick the
# daemon. STANDIN_WORKDIR (default .robustness/docker/standin) holds the debootstrap tree and
# the build context while they are built; it is emptied afterwards.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
MODE="${BASE_IMAGES:-auto}"
WORK="${STANDIN_WORKDIR:-$REPO/.robustness/docker/standin}"
DEBIAN_IMAGE=radam-robustness-standin/debian:bookworm
PYTHON_IMAGE=python:3.11-slim-bookworm
POSTGRES_IMAGE=postgres:16-bookworm
STANDIN_LABEL=org.radam-robustness.standin

say() { echo "docker_base_images: $*" >&2; }

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

describe() {  # "stand-in (...)" or "pulled"
  local label
  label="$("$DOCKER" image inspect --format "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$1" 2>/dev/null || true)"
  if [ -n "$label" ] && [ "$label" != "<no value>" ]; then echo "stand-in: $label"; else echo "upstream"; fi
}

# Does a registry answer? Only the name is resolved (no request is sent to it when it does
# not resolve): the daemon pulls from Docker Hub unless a mirror is configured.
registry_answers() {
  local mirrors
  mirrors="$("$DOCKER" info --format '{{ range .RegistryConfig.Mirrors }}{{ . }} {{ end }}' 2>/dev/null || true)"
  if [ -n "${mirrors// /}" ]; then return 0; fi
  getent hosts registry-1.docker.io >/dev/null 2>&1
}

# The mirror the machine's apt sources name for bookworm's main component.
debian_mirror() {
  local mirror
  mirror="$(apt-cache policy 2>/dev/null \
    | awk '$3 ~ /^bookworm\/main$/ && $2 ~ /^https?:\/\// { print $2; exit }')"
  echo "${mirror:-http://deb.debian.org/debian}"
}

# The other bookworm suites the host uses (updates, security), as sources.list lines.
debian_sources() {
  apt-cache policy 2>/dev/null \
    | awk '$3 ~ /^bookworm(-[a-z]+)?\/main$/ && $2 ~ /^https?:\/\// {
             split($3, s, "/"); line = "deb " $2 " " s[1] " main";
             if (!(line in seen)) { seen[line] = 1; print line } }'
}

build_debian() {
  command -v debootstrap >/dev/null 2>&1 || {
    say "debootstrap is missing (apt-get install debootstrap)"
    exit 69
  }
  local mirror rootfs sources
  mirror="$(debian_mirror)"
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  say "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
    tail -20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  sources="$(debian_sources)"
  if [ -n "$sources" ]; then echo "$sources" >"$rootfs/etc/apt/sources.list"; fi
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  # As the official images: apt keeps no caches in the image.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
APT
  tar --numeric-owner -C "$rootfs" -c . | "$DOCKER" import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL $STANDIN_LABEL=\"debootstrap --variant=minbase bookworm $mirror\"" \
    - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# The host's pip configuration, as the stand-in's /etc/pip.conf: every setting pip reads here
# (files and PIP_* variables, `pip config list`), with the CA bundle and the constraints files
# copied in. file:// indexes and local find-links are this host's disk: left out, and said.
pip_context() {
  local context="$1" py
  py="$(command -v python3.11 || command -v python3)"
  "$py" - "$context" <<'PY'
import configparser, os, pathlib, shutil, subprocess, sys

context = pathlib.Path(sys.argv[1])
listing = subprocess.run(
    [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
).stdout
settings = {}
for line in listing.splitlines():
    key, _, value = line.partition("=")
    scope, _, name = key.rpartition(".")
    settings[name.strip()] = value.strip().strip("'\"")
# The environment wins over the files, as in pip.
for key, value in os.environ.items():
    if key.startswith("PIP_") and value:
        settings[key[4:].lower().replace("_", "-")] = value
out = configparser.ConfigParser()
out["global"] = {}
notes = []
for name, value in sorted(settings.items()):
    if name == "cert":
        shutil.copyfile(value, context / "ca-bundle.crt")
        out["global"]["cert"] = "/etc/pip/ca-bundle.crt"
    elif name == "constraint":
        shutil.copyfile(value, context / "constraints.txt")
        out["global"]["constraint"] = "/etc/pip/constraints.txt"
    elif name in ("index-url", "extra-index-url", "find-links", "trusted-host"):
        kept = [v for v in value.split() if v.startswith(("http://", "https://"))]
        notes += [f"{name} {v} (this host's disk)" for v in value.split() if v not in kept]
        if kept:
            out["global"][name] = " ".join(kept)
    elif name in ("require-virtualenv", "user", "target", "prefix", "root", "src", "cache-dir"):
        notes.append(f"{name} (where pip installs, not how it reaches the index)")
    else:
        out["global"][name] = value
if "cert" not in out["global"] and pathlib.Path("/etc/ssl/certs/ca-certificates.crt").exists():
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", context / "ca-bundle.crt")
    out["global"]["cert"] = "/etc/pip/ca-bundle.crt"
with open(context / "pip.conf", "w") as handle:
    out.write(handle)
if not (context / "constraints.txt").exists():
    (context / "constraints.txt").write_text("")
for note in notes:
    print(f"docker_base_images: the host's pip setting left out of the stand-in: {note}",
          file=sys.stderr)
PY
}

build_python() {
  local context="$WORK/python"
  rm -rf "$context"
  mkdir -p "$context"
  pip_context "$context"
  say "building the stand-in $PYTHON_IMAGE (Debian's python3.11, the host's pip configuration)"
  "$DOCKER" build --network host --quiet \
    --label "$STANDIN_LABEL=Debian bookworm python3.11 in a venv at /usr/local" \
    -f "$REPO/docker/standin/python.Dockerfile" -t "$PYTHON_IMAGE" "$context" >/dev/null
  rm -rf "$context"
}

build_postgres() {
  say "building the stand-in $POSTGRES_IMAGE (Debian's PostgreSQL 15, the official entrypoint's contract)"
  "$DOCKER" build --network host --quiet \
    --label "$STANDIN_LABEL=Debian bookworm PostgreSQL 15, the official image's entrypoint contract" \
    -f "$REPO/docker/standin/postgres.Dockerfile" -t "$POSTGRES_IMAGE" \
    "$REPO/docker/standin" >/dev/null
}

case "$MODE" in
  auto | pull | standin) ;;
  *) say "BASE_IMAGES=$MODE: expected auto, pull or standin"; exit 64 ;;
esac

missing=()
for image in "$PYTHON_IMAGE" "$POSTGRES_IMAGE"; do
  if have_image "$image"; then
    say "$image: present ($(describe "$image")), reused"
  else
    missing+=("$image")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$MODE" != standin ] && registry_answers; then
  for image in "${missing[@]}"; do
    say "pulling $image"
    "$DOCKER" pull --quiet "$image" >/dev/null
  done
  exit 0
fi
if [ "$MODE" = pull ]; then
  say "BASE_IMAGES=pull, but no registry answers (registry-1.docker.io does not resolve)"
  exit 69
fi

say "no registry answers: building stand-ins from Debian's archive for: ${missing[*]}"
mkdir -p "$WORK"
if ! have_image "$DEBIAN_IMAGE"; then build_debian; fi
for image in "${missing[@]}"; do
  case "$image" in
    "$PYTHON_IMAGE") build_python ;;
    "$POSTGRES_IMAGE") build_postgres ;;
  esac
  say "$image: built ($(describe "$image"))"
done
rmdir "$WORK" 2>/dev/null || true
