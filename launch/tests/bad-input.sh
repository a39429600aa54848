#!/usr/bin/env bash
# Bad input, as a user gives it: every numeric flag's NaN, infinities and out-of-range values, impossible
# combinations, missing or corrupt data, unreadable images. Each must stop with one line naming the flag,
# file or rank, before any training. test.sh runs this against the release build, as users run it (built
# with -O: every check stays; Package.swift says why not -Ounchecked).
# Prints 'N passed, M failed'.
set -uo pipefail
NAME=bad source "$(dirname "$0")/lib.sh"

# --- bad input: one line naming the flag or path, exit != 0
expect_error "missing data folder" "/nonexistent/fmnist" train --data fashion-mnist:/nonexistent/fmnist --out "$WORK/x"
mkdir -p "$WORK/empty"
expect_error "missing data file" "$WORK/empty/train-images-idx3-ubyte" train --data "fashion-mnist:$WORK/empty" --out "$WORK/x"
printf 'garbage' | gzip > "$WORK/empty/train-images-idx3-ubyte.gz"
cp /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz "$WORK/empty/"
expect_error "corrupt data file" "train-images-idx3-ubyte.gz" train --data "fashion-mnist:$WORK/empty" --out "$WORK/x"
expect_error "unknown model" "--model" train --model resnet99 --out "$WORK/x"
expect_error "negative lr" "--lr" train --lr -0.1 --out "$WORK/x"
expect_error "zero batch size" "--batch-size" train --batch-size 0 --out "$WORK/x"
expect_error "unknown data set" "--data" train --data imagenet-nope --out "$WORK/x"
expect_error "missing --init-weights file" "The value '/nonexistent/w.safetensors' is invalid for '--init-weights <file>': must be an existing file" train --init-weights /nonexistent/w.safetensors --out "$WORK/x"
head -c 100 "$(dirname "$0")/../../Tests/CommandTests/Golden/init_weights.safetensors" > "$WORK/truncated.safetensors"
expect_error "truncated --init-weights file" "--init-weights $WORK/truncated.safetensors: .*(exceeds the file|truncated)" train --model resnet8 --init-weights "$WORK/truncated.safetensors" --out "$WORK/x"

# --- every numeric flag: NaN, infinities and out-of-range values stop the run before any data is read,
#     with exit 64 and one line naming the flag, the value and the range
expect_usage() {  # expect_usage PATTERN ARGS...: exit 64, one stderr line matching PATTERN, no run directory
  local pattern=$1; shift
  local err="$WORK/usage.txt" name="refused: $*"
  rm -rf "$WORK/u"
  "$RMTRAIN" train "$@" --out "$WORK/u" >/dev/null 2>"$err"; local rc=$?
  if [ $rc -ne 64 ]; then fail "$name" "exit $rc: $(head -c 300 "$err")"
  elif [ "$(wc -l < "$err")" -ne 1 ] || ! grep -qE -- "$pattern" "$err"; then fail "$name" "message: $(cat "$err")"
  elif [ -e "$WORK/u" ]; then fail "$name" "the run directory was created"
  else ok "$name"; fi
}
expect_usage "'-1' is invalid for '--lr-decay <lr-decay>': must be in \(0, 1\]" --lr-schedule step --milestones 1 --lr-decay -1 --epochs 2
expect_usage "'inf' is invalid for '--wd <wd>': must be in \[0, 1\)" --wd inf
expect_usage "'inf' is invalid for '--rm-omega <rm-omega>': must be in \[0, 1000\]" --mix rm --rm-omega inf
expect_usage "'nan' is invalid for '--lr <lr>': must be a finite number > 0" --lr nan
expect_usage "'nan' is invalid for '--momentum <momentum>': must be in \[0, 1\)" --momentum nan
expect_usage "'1' is invalid for '--smoothing <smoothing>': must be in \[0, 1\)" --smoothing 1
expect_usage "'-inf' is invalid for '--rm-alpha <rm-alpha>': must be in \(0, 1\]" --rm-alpha -inf
expect_usage "'nan' is invalid for '--mixup-alpha <mixup-alpha>': must be in \(0, 1000\]" --mixup-alpha nan
expect_usage "--warmup-epochs must be in \[0, --epochs 3\], got 4" --warmup-epochs 4 --epochs 3
expect_usage "--warmup-epochs 0.5 with --sched-on epochs: must be a whole number of epochs" --warmup-epochs 0.5 --sched-on epochs
expect_usage "'iterations' is invalid for '--sched-on <sched-on>'" --sched-on iterations
expect_usage "'-1' is invalid for '--log-interval <n>': must be between 0 and 1000000000" --log-interval -1
expect_usage "'inf' is invalid for '--bucket-mb <bucket-mb>': must be in \(0, 4096\]" --bucket-mb inf
expect_usage "'nan' is invalid for '--collective-timeout <collective-timeout>': must be in \(0, 86400\] seconds" --collective-timeout nan
expect_usage "'0.5,0.5' is invalid for '--cutmix-minmax <cutmix-minmax>': must be MIN,MAX with 0 < MIN < MAX < 1" --mix cutmix --cutmix-minmax 0.5,0.5
expect_usage "'1' is invalid for '--model-ema <decay>': must be in \[0, 1\)" --model-ema 1
expect_usage "--model-ema-warmup needs --model-ema DECAY" --model-ema-warmup
expect_usage "--milestones .* needs --lr-schedule step" --milestones 2
expect_usage "'3,2' is invalid for '--milestones <milestones>': must be increasing epoch numbers" --lr-schedule step --milestones 3,2 --epochs 4
expect_usage "--cutmix-minmax needs --mix cutmix" --cutmix-minmax 0.2,0.8

# --- combinations that cannot work with the data: refused before the first step, both sides named
expect_error "cutmix box range empty on 28-px images" "--cutmix-minmax 0.5,0.51 on 28×28 images.*empty range" \
  train --mix cutmix --cutmix-minmax 0.5,0.51 --train-limit 64 --val-limit 8 --out "$WORK/x"
expect_error "a single-class training set is refused" "single class: nothing to learn" \
  train --train-limit 1 --val-limit 8 --batch-size 1 --out "$WORK/x"
expect_error "an epoch without a step is refused" "an epoch has no step: 3 training image.*--batch-size 4 and --drop-last" \
  train --train-limit 3 --val-limit 8 --batch-size 4 --drop-last --out "$WORK/x"

# --- every training image unreadable: one error saying no image could be read, with the first reason;
#     each bad path logged once
for c in a b; do
  mkdir -p "$WORK/allbad/train/$c" "$WORK/allbad/val/$c"
  for i in $(seq 1 20); do echo garbage > "$WORK/allbad/train/$c/$i.jpg"; done
  cp "$(ls -d "$(dirname "$0")"/../../../shared/data/cifar10/test/airplane/* | head -n 1)" "$WORK/allbad/val/$c/x.jpg"
done
"$RMTRAIN" train --data "imagefolder:$WORK/allbad" --batch-size 8 --epochs 2 --quiet --out "$WORK/ab" > /dev/null 2> "$WORK/ab.err"; rc=$?
dups=$(grep -o "skipped bad image [^:]*" "$WORK/ab.err" | sort | uniq -d | wc -l)
if [ $rc -ne 0 ] && [ "$(grep -c "error:" "$WORK/ab.err")" -eq 1 ] && [ "$dups" -eq 0 ] \
   && grep -q "error: no image of imagefolder:.*allbad/train could be read; the first: .*\.jpg: not a JPEG or PNG file" "$WORK/ab.err"; then
  ok "no readable image: said once, with the first reason; paths logged once"
else fail "no readable image" "rc=$rc dups=$dups $(tail -n 2 "$WORK/ab.err")"; fi

# --- image folders as they come from archives and copies: __MACOSX, .git and an empty class folder are not
#     classes, a link back up the tree is not followed (8 images, not hundreds), all said in one warning line;
#     a complete JPEG with a damaged restart interval is trained on with a warning, not counted as bad
IMF="$WORK/as-unpacked"
cifar_folder "$IMF" 4 airplane cat
mkdir -p "$IMF/train/__MACOSX/cat" "$IMF/train/.git/objects" "$IMF/train/dog"
cp "$(ls -d "$IMF"/train/cat/* | head -n 1)" "$IMF/train/__MACOSX/cat/._x.jpg"
cp "$(ls -d "$IMF"/train/cat/* | head -n 1)" "$IMF/train/.git/objects/x.jpg"
ln -s .. "$IMF/train/cat/up"
cp "$(dirname "$0")/../../Tests/DataPipelineTests/Golden/damaged_restart.jpg" "$IMF/train/airplane/zz_damaged.jpg"
"$RMTRAIN" train --data "imagefolder:$IMF" --batch-size 3 --epochs 1 --quiet --out "$WORK/unpacked" > "$WORK/unpacked.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c "imagefolder: .*/train: skipped" "$WORK/unpacked.log")" -eq 1 ] \
   && grep -q "skipped 2 hidden folder(s): .git, __MACOSX; 1 folder(s) with no .jpg, .jpeg or .png image (not classes): dog; 1 link(s), not followed: cat/up (back up the tree" "$WORK/unpacked.log" \
   && grep -q "train imagefolder:$IMF/train (9 images)" "$WORK/unpacked.log" \
   && grep -q "warning: damaged image $IMF/train/airplane/zz_damaged.jpg decoded as far as its data goes: Corrupt JPEG data: premature end of data segment" "$WORK/unpacked.log" \
   && grep -q '"bad_images": 0,' "$WORK/unpacked/metrics.jsonl"; then
  ok "unpacked folder: 2 classes, 9 images, hidden/empty/loop named in one line; damaged JPEG trained with a warning"
else fail "unpacked folder" "rc=$rc $(head -c 600 "$WORK/unpacked.log")"; fi
mkdir -p "$IMF/train/caf$(printf '\xc3\xa9')" "$IMF/train/cafe$(printf '\xcc\x81')"
cp "$IMF/train/cat/"*.jpg "$IMF/train/caf$(printf '\xc3\xa9')/"; cp "$IMF/train/cat/"*.jpg "$IMF/train/cafe$(printf '\xcc\x81')/"
expect_error "class folders differing only in Unicode normalisation" \
  "$IMF/train has class folders \"caf.*\" \(NF[CD], [56] bytes\) and \"caf.*\" \(NF[CD], [56] bytes\) whose names differ only in Unicode normalisation" \
  train --data "imagefolder:$IMF" --out "$WORK/x"

# --- --config: one file per run; a second --config or a config: key is an error naming both, not a silent choice
CONFIG_A="$WORK/a.yaml"; CONFIG_B="$WORK/b.yaml"; CONFIG_C="$WORK/c.yaml"
printf 'lr: 0.05\n' > "$CONFIG_A"; printf 'lr: 0.01\nconfig: %s\n' "$CONFIG_A" > "$CONFIG_B"; printf 'lr: 0.01\n' > "$CONFIG_C"
expect_error "a second --config" "--config is given 2 times \($CONFIG_A, $CONFIG_C\)" train --config "$CONFIG_A" --train-limit 64 --val-limit 8 --max-steps 1 --out "$WORK/x" --config="$CONFIG_C"
expect_error "a config: key in a config file" "--config $CONFIG_B: key 'config' is not read" train --config "$CONFIG_B" --train-limit 64 --val-limit 8 --max-steps 1 --out "$WORK/x"

finish bad-input
