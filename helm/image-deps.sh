#!/usr/bin/env bash
# Checks that deploy/Dockerfile installs the packages scripts/install-deps.sh
# installs, and that its runtime stage carries exactly the Debian packages of
# the shared libraries warrend links. Run by helm/check.sh; offline (reads
# the dpkg database, never apt).
#
# WARREND=<path>: the built warrend (default build/plain's). Without it the
# NEEDED-library comparison is skipped with a notice; the list comparisons
# still run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="$root/deploy/Dockerfile"
install_deps="$root/scripts/install-deps.sh"
warrend="${WARREND:-$root/build/plain/server/daemon/warrend}"
failures=0
fail() { echo "FAIL [image-deps] $*"; failures=$((failures + 1)); }
sorted() { tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# --- scripts/install-deps.sh: the PACKAGES=( ... ) groups by their comment,
# and the --clients additions.
declare -A group=()
current=""
section=""
while IFS= read -r line; do
  case "$line" in
    *"PACKAGES=("*) section=base; continue ;;
    *"PACKAGES+=("*) section=clients; continue ;;
  esac
  [ -z "$section" ] && continue
  if [[ "$line" =~ ^[[:space:]]*\)[[:space:]]*$ ]]; then section=""; continue; fi
  if [[ "$line" =~ ^[[:space:]]*#[[:space:]]*(.*)$ ]]; then
    current="$section:${BASH_REMATCH[1]%% *}"
    continue
  fi
  [ "$section" = clients ] && current="clients:all"
  group[$current]+=" $line"
done <"$install_deps"
scripts_build="$(echo "${group[base:build]:-} ${group[base:libraries]:-}" | sorted)"
scripts_clients="$(echo "${group[clients:all]:-} ${group[clients:Python:]:-}" | sorted)"
for k in "${!group[@]}"; do
  case "$k" in clients:*) scripts_clients="$(echo "$scripts_clients ${group[$k]}" | sorted)" ;; esac
done
[ -n "$scripts_build" ] || fail "found no build/libraries packages in $install_deps"

# --- deploy/Dockerfile: the packages each stage's apt-get install names.
declare -A stage_pkgs=()
stage=""
joined="$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile")"
while IFS= read -r line; do
  if [[ "$line" =~ ^FROM[[:space:]]+([^[:space:]]+)([[:space:]]+AS[[:space:]]+([^[:space:]]+))? ]]; then
    stage="${BASH_REMATCH[3]:-final}"
    continue
  fi
  if [[ "$line" =~ apt-get[[:space:]]+install ]]; then
    pkgs="$(echo "$line" | sed -e 's/.*apt-get install//' -e 's/&&.*//' | tr ' ' '\n' | grep -v '^-' | grep -v '^$' || true)"
    stage_pkgs[$stage]+=" $pkgs"
  fi
done <<<"$joined"
docker_build="$(echo "${stage_pkgs[build]:-}" | sorted)"
docker_health="$(echo "${stage_pkgs[healthcheck]:-}" | sorted)"
docker_runtime="$(echo "${stage_pkgs[final]:-}" | sorted)"

# 1. The build stage installs the scripts' build tools and libraries (ccache
#    only speeds up rebuilds: not in a one-shot image build).
want_build="$(echo "$scripts_build" | tr ' ' '\n' | grep -vx ccache | sorted)"
[ "$docker_build" = "$want_build" ] ||
  fail "build stage installs [$docker_build], scripts/install-deps.sh builds with [$want_build]"

# 2. The healthcheck stage uses only the scripts' --clients toolchain.
for p in $docker_health; do
  [[ " $scripts_clients " == *" $p "* ]] || fail "healthcheck stage package $p is not in install-deps.sh --clients"
done
[ -n "$docker_health" ] || fail "no healthcheck stage packages found"

# 3. The runtime stage has no development packages and no compilers.
for p in $docker_runtime; do
  case "$p" in *-dev|cmake|g++|gcc|make|golang-*) fail "runtime stage installs build package $p" ;; esac
done

# 4. Base image, user, entrypoint.
grep -q '^ARG DEBIAN_IMAGE=debian:12' "$dockerfile" || fail "the base image is not Debian 12"
[ "$(grep -c '^FROM ' "$dockerfile")" -ge 2 ] || fail "not a multi-stage build"
user="$(grep '^USER ' "$dockerfile" | tail -1 | awk '{print $2}')"
[[ "${user%%:*}" =~ ^[1-9][0-9]*$ ]] || fail "final USER '$user' is not a numeric non-root uid (runAsNonRoot needs one)"
grep -q '^ENTRYPOINT \["/usr/local/bin/warrend"\]' "$dockerfile" || fail "ENTRYPOINT is not warrend"
uid="$(awk '/^podSecurityContext:/{p=1} p && /runAsUser:/{print $2; exit}' "$root/helm/warren/values.yaml")"
[ "${user%%:*}" = "$uid" ] || fail "image user ${user%%:*} differs from the chart's runAsUser $uid"
port="$(awk '/^containerPorts:/{p=1} p && /grpc:/{print $2; exit}' "$root/helm/warren/values.yaml")"
grep -q "^EXPOSE $port\$" "$dockerfile" || fail "EXPOSE differs from the chart's containerPorts.grpc $port"
grep -q "\"--listen=0.0.0.0:$port\"" "$dockerfile" || fail "CMD does not listen on 0.0.0.0:$port"
grep -q '^COPY deploy/healthcheck/main.go' "$dockerfile" && [ -f "$root/deploy/healthcheck/main.go" ] ||
  fail "the healthcheck source the Dockerfile copies is missing"

# 5. Runtime packages = the packages of warrend's NEEDED libraries (minus
#    the base image's), each one a dependency of the build stage's packages.
base_pkgs="libc6 libgcc-s1 libstdc++6"
# Packages reachable from the build stage's within three Depends steps
# (e.g. libgrpc++-dev -> libgrpc-dev -> libgrpc29), in one awk pass.
reachable=" $(dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n' 2>/dev/null | awk -F'\t' -v roots="$docker_build" '
  { n = split($2, parts, /[,|]/); deps[$1] = ""
    for (i = 1; i <= n; i++) { d = parts[i]; sub(/\(.*\)/, "", d); sub(/:any/, "", d); gsub(/[ \t]/, "", d)
      if (d != "") deps[$1] = deps[$1] " " d } }
  END { m = split(roots, frontier, " ")
    for (step = 1; step <= 3; step++) { k = 0
      for (i = 1; i <= m; i++) { c = split(deps[frontier[i]], ds, " ")
        for (j = 1; j <= c; j++) if (!(ds[j] in seen)) { seen[ds[j]] = 1; next_[++k] = ds[j] } }
      delete frontier; for (i = 1; i <= k; i++) frontier[i] = next_[i]; m = k; delete next_ }
    for (p in seen) printf "%s ", p }') "
if [ -x "$warrend" ]; then
  needed=()
  while read -r lib; do needed+=("$lib"); done < <(readelf -d "$warrend" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  declare -A resolved=()
  while read -r name _ path _; do resolved[$name]="$path"; done < <(ldd "$warrend")
  # Which candidate package holds each library: dpkg-query -L reads only
  # that package's file list (dpkg -S would scan them all: slow). Paths are
  # compared without /usr (merged /usr: dpkg may record /lib/...).
  declare -A owner_of=()
  for p in $docker_runtime $base_pkgs; do
    while read -r f; do owner_of[${f#/usr}]="$p"; done < <(dpkg-query -L "$p" 2>/dev/null | grep '\.so')
  done
  declare -A used=()
  for lib in "${needed[@]}"; do
    path="${resolved[$lib]:-}"
    [ -n "$path" ] || { fail "ldd cannot resolve $lib"; continue; }
    owner="${owner_of[${path#/usr}]:-}"
    if [ -z "$owner" ]; then
      real="$(readlink -f "$path")"
      owner="${owner_of[${real#/usr}]:-}"
    fi
    if [ -z "$owner" ]; then
      fail "warrend links $lib ($real), which no runtime-stage package provides"
      continue
    fi
    used[$owner]=1
  done
  for p in $docker_runtime; do
    [ "$p" = ca-certificates ] && continue
    [ -n "${used[$p]:-}" ] || fail "runtime package $p provides none of warrend's NEEDED libraries"
  done
  want_runtime="$(echo "${!used[@]}" | tr ' ' '\n' | grep -vxF -f <(echo "$base_pkgs" | tr ' ' '\n') | sorted)"
  echo "image-deps: warrend's ${#needed[@]} NEEDED libraries come from: $want_runtime (+ base: $base_pkgs)"
else
  echo "image-deps: $warrend not built: NEEDED libraries not compared (list checks only)" >&2
fi
for p in $docker_runtime; do
  [ "$p" = ca-certificates ] && continue
  [[ "$reachable" == *" $p "* ]] || fail "runtime package $p is not a dependency of the build stage's packages (install-deps.sh)"
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    fail "runtime package $p is not installed here (wrong name for Debian 12?)"
done

if [ "$failures" -gt 0 ]; then
  echo "image-deps: $failures failures"
  exit 1
fi
echo "image-deps: Dockerfile agrees with scripts/install-deps.sh and warrend's libraries"
