#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on the gateway's translation units that changed
# since they were last found clean:
#   scripts/check-tidy.sh              # service/*.cc tests/*.cc tests/support/*.cc
#   scripts/check-tidy.sh FILE...      # these translation units only
#   TIDY_ALL=1 scripts/check-tidy.sh   # ignore the cache: check every file
# "Changed" means: not in the cache of clean results,
# ${XDG_CACHE_HOME:-$HOME/.cache}/campaign-gateway/tidy/. A file's key hashes
# everything clang-tidy's verdict depends on: the file preprocessed as clang
# sees it (every header it includes: project, generated and system), the
# text of the project files among them (preprocessing drops NOLINT
# comments), its compile command, the .clang-tidy files that apply and
# clang-tidy's version. A clean result stores the key; a finding does not.
# So a fresh machine (CI) checks everything and a developer's next run checks
# only what an edit, a pull or an upgrade changed. Paths inside the checkout
# are hashed relative to it, so worktrees share the cache.
# Env: BUILD_DIR (default build/; configured here if it has no
# compile_commands.json). Exits non-zero on any finding.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."

# Bumped when what goes into a key changes.
readonly key_version="check-tidy key 1"

# Prints the files whose text decides `preprocessed` (clang -E output): the
# ones of the checkout among its line markers, one per line.
project_files() {
  local f
  sed -n 's/^# [0-9]* "\([^"]*\)".*/\1/p' "$1" | sort -u |
    while read -r f; do
      case $f in
        "$root/$build_dir"/*) ;;  # generated: its text is in the output
        "$root"/*) echo "$f" ;;
      esac
    done
}

# Prints a hash of the text of the files listed in `list`.
hash_files() {
  local f
  while read -r f; do
    printf '%s %s\n' "${f#"$root"/}" "$(sha256sum <"$f" | cut -c1-64)"
  done <"$1" | sha256sum | cut -c1-64
}

# Worker (run by xargs): checks one file, writes $results/NAME.{status,log}.
#   check_one ABSOLUTE_PATH TMP_DIR
check_one() {
  local abs=$1 rel=${1#"$root"/} tmp=$2
  local name
  name=$(tr / _ <<<"$rel")
  local status=$results/$name.status log=$results/$name.log

  # The compile command (CMake writes "command", shell-quoted).
  local dir cmd
  { read -r dir && read -r cmd; } < <(jq -r --arg f "$abs" \
    'first(.[] | select(.file == $f)) | .directory, .command' "$db")
  local -a argv
  eval "argv=($cmd)"
  # The same command, preprocessing: without -c and -o, compiled by clang.
  local -a pp=()
  local i
  for ((i = 1; i < ${#argv[@]}; ++i)); do
    case ${argv[i]} in
      -o) ((++i)) ;;
      -c) ;;
      *) pp+=("${argv[i]}") ;;
    esac
  done

  local key="" files_hash=""
  if (cd "$dir" && clang++ -E "${pp[@]}" -o "$tmp/pp" 2>"$tmp/pp.err"); then
    project_files "$tmp/pp" >"$tmp/files"
    files_hash=$(hash_files "$tmp/files")
    local config d=$rel
    config=$(while [ "$d" != . ]; do
      d=$(dirname "$d")
      [ ! -f "$d/.clang-tidy" ] || { echo "$d/.clang-tidy" && cat "$d/.clang-tidy"; }
    done)
    key=$({
      echo "$key_version"
      echo "$tidy_version"
      echo "$config"
      echo "$files_hash"
      echo "$cmd"
      cat "$tmp/pp"
    } | sed "s|$root_re|<root>|g" | sha256sum | cut -c1-64)
  fi
  # (No key: clang cannot preprocess it. clang-tidy will say why.)

  if [ -n "$key" ] && [ "${TIDY_ALL:-0}" != 1 ] && [ -f "$cache/$key" ]; then
    touch "$cache/$key"
    echo cached >"$status"
    return
  fi
  local start=$SECONDS
  if clang-tidy -p "$build_dir" --quiet "$abs" >"$tmp/out" 2>&1; then
    # Stored only if no project file changed while clang-tidy ran.
    if [ -n "$key" ] && [ "$(hash_files "$tmp/files")" = "$files_hash" ]; then
      echo "$rel" >"$cache/$key.$$"
      mv "$cache/$key.$$" "$cache/$key"
    fi
    echo checked >"$status"
    echo "check-tidy: $rel clean ($((SECONDS - start))s)"
  else
    grep -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' \
      "$tmp/out" >"$log" || true
    echo failed >"$status"
    echo "check-tidy: $rel FAILED ($((SECONDS - start))s)"
  fi
}

if [ "${1:-}" = --one ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  check_one "$2" "$tmp"
  exit 0
fi

start=$SECONDS
# clang-tidy, and clang to preprocess as clang-tidy's own front end does.
scripts/install-deps.sh clang-tidy clang jq

root=$PWD
build_dir=${BUILD_DIR:-build}
build_dir=${build_dir%/}
db=$root/$build_dir/compile_commands.json
if [ ! -f "$db" ]; then
  echo "check-tidy: configuring $build_dir/"
  cmake -S . -B "$build_dir" -G Ninja >/dev/null
fi
# The generated protobuf and gRPC headers the sources include (this also
# regenerates compile_commands.json if a CMakeLists.txt changed).
if ! out=$(cmake --build "$build_dir" --target campaign_proto \
  campaign_proto_grpc reflection_client_proto_grpc 2>&1); then
  echo "$out" >&2
  echo "check-tidy: cannot build the generated headers in $build_dir/" >&2
  exit 1
fi

if (($#)); then
  files=()
  for f in "$@"; do files+=("$(cd "$caller_dir" && realpath -m -- "$f")"); done
  mapfile -t files < <(printf '%s\n' "${files[@]}" | awk '!seen[$0]++')
else
  files=("$root"/service/*.cc "$root"/tests/*.cc "$root"/tests/support/*.cc)
fi
missing=$(comm -23 <(printf '%s\n' "${files[@]}" | sort -u) \
  <(jq -r '.[].file' "$db" | sort -u))
if [ -n "$missing" ]; then
  echo "check-tidy: not translation units of $build_dir/ (headers are" \
    "checked through the .cc files that include them):" >&2
  echo "${missing//"$root"\//  }" >&2
  exit 2
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/campaign-gateway/tidy
mkdir -p "$cache"
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
tidy_version=$(clang-tidy --version)
root_re=$(printf '%s' "$root" | sed 's/[][\.*^$|]/\\&/g')
export root build_dir db cache results tidy_version root_re

printf '%s\0' "${files[@]}" |
  xargs -0 -n1 -P"$(nproc)" "$root/scripts/check-tidy.sh" --one || true

checked=0 cached=0 failed=0
for f in "${files[@]}"; do
  name=$(tr / _ <<<"${f#"$root"/}")
  case $(cat "$results/$name.status" 2>/dev/null) in
    checked) ((++checked)) ;;
    cached) ((++cached)) ;;
    failed)
      ((++checked, ++failed))
      cat "$results/$name.log"
      ;;
    *)
      ((++failed))
      echo "check-tidy: ${f#"$root"/}: the check itself failed" >&2
      ;;
  esac
done
# Entries no run has used for 60 days belong to code long gone.
find "$cache" -type f -mtime +60 -delete 2>/dev/null || true
echo "check-tidy: checked $checked, skipped $cached cached," \
  "failed $failed ($((SECONDS - start))s)"
((failed == 0))
