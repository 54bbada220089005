#!/usr/bin/env bash
# The installed library works as the README says: `meson install` of this build into a
# temporary directory gives the library, chunkmeans.h, chunkmeans.pc, the command and its man
# page; the README's example program (between its "example.c: begin/end" markers) compiles with
# exactly `cc example.c $(pkg-config --cflags --libs chunkmeans)`, runs on a generated TIFF and
# writes what `chunkmeans run -k 4 --seed 1` writes, byte for byte; a bad input makes it fail
# with the file's name; the man page renders without warnings.
# Usage: install.sh BUILD_DIR README.md CM_MKIMAGE MESON. Exit 77 (skipped) without cc or
# pkg-config.
set -euo pipefail
build=$(cd "$1" && pwd) readme=$2 mkimage=$3 meson=$4

for tool in cc pkg-config; do
    command -v "$tool" >/dev/null || { echo "SKIP: no $tool to build the example with"; exit 77; }
done
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cm-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest=$work/dest

"$meson" install -C "$build" --no-rebuild --destdir "$dest" --quiet >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; fail "meson install --destdir failed"; }

pc=$(find "$dest" -name chunkmeans.pc -path '*/pkgconfig/*')
[[ -n $pc ]] || fail "no chunkmeans.pc installed"
header=$(find "$dest" -path '*/include/chunkmeans/chunkmeans.h')
[[ -n $header ]] || fail "no include/chunkmeans/chunkmeans.h installed"
man=$(find "$dest" -path '*/man1/chunkmeans.1')
[[ -n $man ]] || fail "no man1/chunkmeans.1 installed"
exe=$(find "$dest" -path '*/bin/chunkmeans' -type f)
[[ -x $exe ]] || fail "no bin/chunkmeans installed"
libdir=$(dirname "$(dirname "$pc")")
ls "$libdir"/libchunkmeans.so.0 "$libdir"/libchunkmeans.a >/dev/null \
    || fail "libchunkmeans.so.0 and libchunkmeans.a are not both in $libdir"
"$exe" --version >/dev/null || fail "the installed command does not run"

# The README's program, compiled against the installed files only: the .pc file, whose paths
# (for the build's prefix) pkg-config puts under the destination directory.
awk '/<!-- example.c: begin/ { inside = 1; next } /<!-- example.c: end/ { inside = 0 }
     inside && !/^```/' "$readme" >"$work/example.c"
grep -q 'main(' "$work/example.c" || fail "no example program between the markers in $readme"
PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR=$dest
cd "$work"
# In a sanitized build the library needs the sanitizers' runtime, which then does not come
# first among the example's libraries; it works all the same.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
# shellcheck disable=SC2046 # the README's line, word splitting and all
cc example.c $(pkg-config --cflags --libs chunkmeans) -o example 2>cc.log \
    || { cat cc.log >&2; fail "the example does not compile against the installed library"; }

"$mkimage" in.tif --width 300 --height 200 --tile 128 >/dev/null
LD_LIBRARY_PATH=$libdir ./example in.tif out.tif >example.out \
    || fail "the example failed on in.tif"
cat example.out
grep -q '^chunkmeans [0-9.]*, 4 colours:' example.out || fail "the example printed no 4 colours"
[[ $(grep -c '^  colour [0-3]:' example.out) -eq 4 ]] || fail "the example printed not 4 colours"
"$exe" info out.tif --colors >info.txt || fail "out.tif is not a TIFF chunkmeans reads"
grep -q '^size: *300 x 200 ' info.txt || fail "out.tif is not 300 x 200: $(cat info.txt)"
colours=$(awk '/^colors:/ { print $2 }' info.txt)
[[ $colours -ge 1 && $colours -le 4 ]] || fail "out.tif holds $colours colours, not 1 to 4"
if command -v tiffinfo >/dev/null; then
    tiffinfo out.tif >tiffinfo.txt 2>&1 || fail "tiffinfo cannot read out.tif"
    grep -q 'Image Width: 300 Image Length: 200' tiffinfo.txt || fail "tiffinfo: $(cat tiffinfo.txt)"
fi
"$exe" run in.tif run.tif -k 4 --seed 1 -q || fail "chunkmeans run failed"
cmp -s out.tif run.tif || fail "the example's output differs from chunkmeans run -k 4 --seed 1"

# Errors come back as codes and messages naming the file.
echo "not a TIFF" >bad.tif
if LD_LIBRARY_PATH=$libdir ./example bad.tif bad.out.tif 2>bad.err; then
    fail "the example succeeded on a file that is no TIFF"
fi
grep -q 'bad.tif' bad.err || fail "the message does not name the file: $(cat bad.err)"
[[ ! -e bad.out.tif ]] || fail "a failed run left bad.out.tif behind"

# The man page renders without warnings.
if command -v groff >/dev/null; then
    groff -man -Tascii -ww -z "$man" 2>groff.err || fail "groff cannot render the man page"
    [[ ! -s groff.err ]] || fail "groff warns about the man page: $(cat groff.err)"
elif command -v man >/dev/null; then
    man -l "$man" >/dev/null 2>man.err || fail "man cannot render the man page"
    [[ ! -s man.err ]] || fail "man warns about the man page: $(cat man.err)"
else
    echo "no groff nor man: the man page was installed but not rendered"
fi
echo "installed in a temporary directory: the README's example builds, runs and matches chunkmeans run"
