#!/usr/bin/env bash
# ckz / ckzinfo as users run them: outputs, exit codes, refusals, chains, interruption.
# Usage: test_cli.sh BIN_DIR
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
mk() { python3 "$here/make_safetensors.py" "$@"; }
expect() {  # expect CODE DESCRIPTION -- command...
  local want=$1 what=$2; shift 3
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $what: exit $got, expected $want"; cat out.txt err.txt; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
contains() {  # contains FILE TEXT DESCRIPTION
  if grep -q -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3: '$2' not in $1"; cat "$1"; failures=$((failures + 1)); fi
}

mk a.safetensors --seed 1 --step 0
mk b.safetensors --seed 1 --step 10
mk c.safetensors --seed 1 --step 20

expect 0 "compress to the default name" -- "$bin/ckz" compress -q a.safetensors
[ -f a.safetensors.ckz ] && echo "ok: a.safetensors.ckz written" || { echo "FAIL: no a.safetensors.ckz"; failures=$((failures + 1)); }
[ -f a.safetensors ] && echo "ok: input kept" || { echo "FAIL: input removed"; failures=$((failures + 1)); }
expect 3 "refuse to overwrite without -f" -- "$bin/ckz" compress -q a.safetensors
contains err.txt "already exists" "overwrite refusal says why"
expect 0 "overwrite with -f" -- "$bin/ckz" compress -q -f a.safetensors
expect 0 "decompress" -- "$bin/ckz" decompress -q a.safetensors.ckz -o a2.safetensors
cmp -s a.safetensors a2.safetensors && echo "ok: byte-identical restore" || { echo "FAIL: restore differs"; failures=$((failures + 1)); }
expect 3 "decompress refuses to overwrite" -- "$bin/ckz" decompress -q a.safetensors.ckz -o a2.safetensors
expect 0 "verify" -- "$bin/ckz" verify a.safetensors.ckz
contains out.txt "OK" "verify prints OK"

# Chains with --ref, keyframe interval, parents found beside the file.
expect 0 "compress b as a link of a" -- "$bin/ckz" compress -q --lossless b.safetensors --ref a.safetensors.ckz
expect 0 "compress c as a link of b" -- "$bin/ckz" compress -q --lossless c.safetensors --ref b.safetensors.ckz
"$bin/ckzinfo" --json c.safetensors.ckz > info.json
contains info.json '"depth": 2' "c is at depth 2"
python3 -c "import json; d=json.load(open('info.json')); assert d['link']['path_hint']=='b.safetensors.ckz'; assert d['step']==20" \
  && echo "ok: ckzinfo --json parses" || { echo "FAIL: ckzinfo --json"; failures=$((failures + 1)); }
expect 0 "keyframe interval 2 turns c into a keyframe" -- "$bin/ckz" compress -q -f --lossless c.safetensors --ref b.safetensors.ckz --keyframe-interval 2 -o c-key.ckz
"$bin/ckzinfo" --json c-key.ckz > key.json
contains key.json '"link": null' "c-key.ckz is a keyframe"
expect 0 "decompress through the chain" -- "$bin/ckz" decompress -q c.safetensors.ckz -o c2.safetensors
cmp -s c.safetensors c2.safetensors && echo "ok: chain restore identical" || { echo "FAIL: chain restore differs"; failures=$((failures + 1)); }
mkdir moved && cp c.safetensors.ckz moved/
expect 4 "missing parent" -- "$bin/ckz" decompress -q moved/c.safetensors.ckz -o moved/c.safetensors
contains err.txt "ParentNotFound" "missing parent is named"
contains err.txt "$(python3 -c "import json; print(json.load(open('info.json'))['link']['parent_content_id'])")" "error names the parent content id"
expect 0 "parent found with --search" -- "$bin/ckz" decompress -q moved/c.safetensors.ckz -o moved/c.safetensors --search .
expect 3 "--ref to a missing file" -- "$bin/ckz" compress -q -f c.safetensors --ref nothere.ckz -o x.ckz
expect 4 "decompress with an explicit wrong parent" -- "$bin/ckz" decompress -q -f c.safetensors.ckz --ref a.safetensors.ckz -o c3.safetensors
contains err.txt "WrongParent" "wrong parent is named"
expect 0 "decompress with the explicit right parent" -- "$bin/ckz" decompress -q -f moved/c.safetensors.ckz --ref b.safetensors.ckz -o c3.safetensors
mkdir hist && cp a.safetensors hist/step_0.safetensors && cp b.safetensors hist/step_10.safetensors && cp c.safetensors hist/step_2.safetensors
expect 0 "compress a history folder" -- "$bin/ckz" compress --lossless hist -o hist.ckz --keyframe-interval 3
contains out.txt "3 checkpoints" "history summary line"
"$bin/ckzinfo" --json hist.ckz/step_10.safetensors.ckz > h.json
contains h.json '"path_hint": "step_2.safetensors.ckz"' "history in natural order (step_2 before step_10)"

# Lossy by default for links (rate-distortion levels), lossless on request, ExCP with --excp.
expect 0 "lossy link by default" -- "$bin/ckz" compress b.safetensors --ref a.safetensors.ckz -o lossy.ckz
contains out.txt "lossy: rate-distortion" "summary says lossy"
"$bin/ckzinfo" --json lossy.ckz > lossy.json
contains lossy.json '"lossless": false' "ckzinfo --json says lossy"
"$bin/ckzinfo" lossy.ckz > lossy.txt
contains lossy.txt "LOSSY" "ckzinfo says LOSSY"
contains lossy.txt "levels residual" "weights are level residuals"
contains lossy.txt "cmlx" "level streams are cml"
expect 0 "decompress a lossy link" -- "$bin/ckz" decompress -q lossy.ckz -o lossy.safetensors
cmp -s lossy.safetensors b.safetensors && { echo "FAIL: lossy output identical to the input"; failures=$((failures + 1)); } || echo "ok: lossy output differs from the input"
expect 1 "--lossless with ExCP options" -- "$bin/ckz" compress --lossless --excp --bits 3 b.safetensors --ref a.safetensors.ckz -o x.ckz
expect 1 "ExCP options without --excp" -- "$bin/ckz" compress --bits 3 b.safetensors --ref a.safetensors.ckz -o x.ckz
expect 1 "--bits out of range" -- "$bin/ckz" compress --excp --bits 9 b.safetensors --ref a.safetensors.ckz -o x.ckz
expect 1 "--quality out of range" -- "$bin/ckz" compress --quality 10 b.safetensors --ref a.safetensors.ckz -o x.ckz
expect 1 "--quality with --excp" -- "$bin/ckz" compress --excp --quality 3 b.safetensors --ref a.safetensors.ckz -o x.ckz
expect 0 "ExCP on request" -- "$bin/ckz" compress -f --excp b.safetensors --ref a.safetensors.ckz -o excp.ckz
contains out.txt "lossy: ExCP" "summary says ExCP"
"$bin/ckzinfo" excp.ckz > excp.txt
contains excp.txt "excp residual" "ExCP weights are residual codebooks"
expect 0 "packed index coding" -- "$bin/ckz" compress -q -f --excp --entropy packed b.safetensors --ref a.safetensors.ckz -o packed.ckz
"$bin/ckzinfo" packed.ckz > packed.txt
contains packed.txt "packedx" "packed streams used"
# (0.11) ckzinfo on the lstm-cm vectors: the codec, the feature bit and the model's chunks.
cases="$here/../../conformance/cases"
"$bin/ckzinfo" "$cases/full-lstm-cm-chain/input.ckz" > lstmcm.txt
contains lstmcm.txt "lstm-cmx" "ckzinfo names lstm-cm streams"
contains lstmcm.txt "LSTM-mixed indices (lstm-cm)" "ckzinfo names required feature bit 10"
contains lstmcm.txt "lstm model  the parent's" "ckzinfo shows the parent's model"

# Damaged files.
cp a.safetensors.ckz bad.ckz
python3 -c "
import json,subprocess
info=json.loads(subprocess.check_output(['$bin/ckzinfo','--json','--chunks','bad.ckz']))
off=info['tensors'][0]['chunks'][0]['offset']+40
b=bytearray(open('bad.ckz','rb').read()); b[off]^=0x40; open('bad.ckz','wb').write(b)"
expect 2 "verify fails on a damaged chunk" -- "$bin/ckz" verify bad.ckz
contains out.txt "FAILED" "verify prints FAILED"
expect 2 "decompress fails on a damaged chunk" -- "$bin/ckz" decompress -q bad.ckz -o bad.safetensors
[ ! -e bad.safetensors ] && echo "ok: nothing written for a damaged file" || { echo "FAIL: output left behind"; failures=$((failures + 1)); }
ls -a | grep -q '\.tmp-' && { echo "FAIL: temporary file left"; failures=$((failures + 1)); } || echo "ok: no temporaries left"
head -c 100 a.safetensors > notckz.ckz
expect 2 "ckzinfo on a non-CKZ file" -- "$bin/ckzinfo" notckz.ckz
contains err.txt "BadMagic" "BadMagic named"
expect 1 "unknown option" -- "$bin/ckz" compress --frobnicate a.safetensors
expect 1 "unknown command" -- "$bin/ckz" squash a.safetensors
echo "not a checkpoint" > notes.txt
expect 5 "unsupported input" -- "$bin/ckz" compress -q -f notes.txt -o m.ckz
expect 0 "help" -- "$bin/ckz" --help
contains out.txt "Exit codes" "help documents exit codes"

# Pipes: '-' is stdin / stdout, nothing named '-' appears, summaries go to stderr then.
mkdir spool && export TMPDIR="$work/spool"
cat a.safetensors | "$bin/ckz" compress -q - -o piped.ckz && echo "ok: compress from stdin" || { echo "FAIL: compress from stdin"; failures=$((failures + 1)); }
"$bin/ckz" decompress piped.ckz -o - 2>summary.txt | cmp -s - a.safetensors && echo "ok: decompress to stdout" || { echo "FAIL: decompress to stdout"; failures=$((failures + 1)); }
[ ! -e ./- ] && echo "ok: no file named '-'" || { echo "FAIL: a file named '-'"; failures=$((failures + 1)); }
contains summary.txt "(stdout)" "the summary goes to stderr when the data goes to stdout"
"$bin/ckz" compress -q - < c.safetensors | "$bin/ckz" decompress -q - | cmp -s - c.safetensors && echo "ok: compress | decompress" || { echo "FAIL: compress | decompress"; failures=$((failures + 1)); }
expect 1 "two inputs with stdin" -- "$bin/ckz" compress - a.safetensors -o x.ckz
[ -z "$(ls -A spool)" ] && echo "ok: no spool folder left" || { echo "FAIL: left in \$TMPDIR: $(ls -A spool)"; failures=$((failures + 1)); }
# Several files: one JSON array, or JSON Lines.
"$bin/ckzinfo" --json a.safetensors.ckz piped.ckz > many.json
python3 -c "import json; d=json.load(open('many.json')); assert [x['file'] for x in d]==['a.safetensors.ckz','piped.ckz']" \
  && echo "ok: ckzinfo --json on two files is one array" || { echo "FAIL: ckzinfo --json array"; cat many.json; failures=$((failures + 1)); }
"$bin/ckzinfo" --jsonl a.safetensors.ckz piped.ckz > many.jsonl
python3 -c "import json; l=open('many.jsonl').read().splitlines(); assert len(l)==2 and all(json.loads(x)['lossless'] for x in l)" \
  && echo "ok: ckzinfo --jsonl" || { echo "FAIL: ckzinfo --jsonl"; cat many.jsonl; failures=$((failures + 1)); }
# Errors: the path once, the code by name (its number is not the exit code).
expect 3 "missing input" -- "$bin/ckz" compress nothing.safetensors
[ "$(grep -o 'nothing.safetensors' err.txt | wc -l)" -eq 1 ] && echo "ok: the path is named once" || { echo "FAIL: path repeated"; cat err.txt; failures=$((failures + 1)); }
contains err.txt "ckz: IoError: nothing.safetensors: cannot open" "error printed as NAME: message"

# Interrupted: SIGINT during a slow compress leaves neither output nor temporary.
mk big.safetensors --seed 3 --elements 3000000
"$bin/ckz" compress -q -l 19 big.safetensors -o big.ckz &
pid=$!
sleep 0.7
kill -INT $pid
wait $pid
code=$?
if [ $code -ne 0 ] && [ ! -e big.ckz ] && ! ls -a | grep -q '\.tmp-'; then
  echo "ok: interrupted compress left nothing (exit $code)"
else
  echo "FAIL: after SIGINT: exit $code, files: $(ls -a | tr '\n' ' ')"; failures=$((failures + 1))
fi

echo "cli tests: $failures failure(s)"
[ $failures -eq 0 ]
