#!/usr/bin/env bash
# rmtrain eval as a user runs it after training: the checkpoint's input (image size, resize rule,
# normalisation, class names) is its default, a flag that overrides it is said in one line, classes are
# matched by name (a folder with some of the checkpoint's classes evaluates correctly, one with a class it
# does not know is refused in one line), and train's start line names the classes and both splits' images.
# A tiny image folder from the shared CIFAR-10 JPEGs, trained at --image-size 16: seconds.
# Prints 'N passed, M failed'.
set -uo pipefail
NAME=eval source "$(dirname "$0")/lib.sh"
cifar_link "$WORK/img/train" train 24 airplane cat dog
cifar_link "$WORK/img/val" test 12 airplane cat dog
R="$WORK/run"
if ! "$RMTRAIN" train --model resnet8 --data "imagefolder:$WORK/img" --image-size 16 --epochs 1 --batch-size 16 \
     --lr 0.05 --quiet --out "$R" > "$WORK/train.log" 2>&1; then
  fail "train at --image-size 16" "$(tail -n 3 "$WORK/train.log")"
  finish eval; exit
fi

# --- train's start line: classes, and images per split
if grep -qE "3 classes at 16×16: train imagefolder:[^ ]*/train \(72 images\), val imagefolder:[^ ]*/val \(36 images\)" "$WORK/train.log"
then ok "start line names the classes and both splits"; else fail "start line" "$(head -n 1 "$WORK/train.log")"; fi

json() { grep -o "\"$2\": [^,}]*" <<< "$1" | awk '{print $2}'; }
row=$(tail -n 1 "$R/metrics.jsonl")

# --- eval without --image-size evaluates at the checkpoint's 16, and gives the run's own numbers
out=$("$RMTRAIN" eval --checkpoint "$R/best.rmck" --data "imagefolder:$WORK/img" --json 2> "$WORK/eval.err")
if [ "$(json "$out" image_size)" = 16 ] && [ "$(json "$out" top1)" = "$(json "$row" val_top1)" ] && [ ! -s "$WORK/eval.err" ] \
   && awk -v a="$(json "$out" loss)" -v b="$(json "$row" val_loss)" 'BEGIN { d = a - b; exit !(b > 0 && d * d < 1e-10 * b * b) }'
then ok "eval defaults to the checkpoint's image size (16) and equals the run's val_top1 $(json "$row" val_top1)"
else fail "eval at the checkpoint's size" "eval: $out $(cat "$WORK/eval.err"); run: $row"; fi

# --- --image-size overriding the checkpoint's is said in one line naming both
"$RMTRAIN" eval --checkpoint "$R/best.rmck" --data "imagefolder:$WORK/img" --image-size 32 --json > "$WORK/o32.json" 2> "$WORK/o32.err"
if [ "$(json "$(cat "$WORK/o32.json")" image_size)" = 32 ] && [ "$(wc -l < "$WORK/o32.err")" -eq 1 ] \
   && grep -q -- "--image-size 32 overrides $R/best.rmck's input: image size 32 (trained at 16)" "$WORK/o32.err"
then ok "--image-size override said in one line"; else fail "--image-size override" "$(cat "$WORK/o32.json" "$WORK/o32.err")"; fi

# --- classes by name: evaluation folders holding some of the classes (no train folder) add up to the whole:
#     images, hits and loss (a mapping by position would label cat as airplane in cat,dog)
hits=0; images=0; lossum=0
for part in "airplane" "cat dog"; do
  d="$WORK/part-${part// /-}"
  mkdir -p "$d/val"
  for c in $part; do cp -r "$WORK/img/val/$c" "$d/val/"; done
  o=$("$RMTRAIN" eval --checkpoint "$R/best.rmck" --data "imagefolder:$d" --json 2>> "$WORK/parts.err")
  n=$(json "$o" images); images=$((images + ${n:-0}))
  hits=$(awk -v h="$hits" -v t="$(json "$o" top1)" -v n="$n" 'BEGIN { printf "%d", h + t * n + 0.5 }')
  lossum=$(awk -v s="$lossum" -v l="$(json "$o" loss)" -v n="$n" 'BEGIN { printf "%.12g", s + l * n }')
done
whole_hits=$(awk -v t="$(json "$out" top1)" -v n="$(json "$out" images)" 'BEGIN { printf "%d", t * n + 0.5 }')
if [ "$images" -eq 36 ] && [ "$hits" -eq "$whole_hits" ] && [ ! -s "$WORK/parts.err" ] \
   && awk -v a="$lossum" -v b="$(json "$out" loss)" 'BEGIN { d = a - 36 * b; exit !(d * d < 1e-8 * a * a) }'
then ok "subsets of the classes map by name ($hits hits of 36 over {airplane} + {cat, dog})"
else fail "subsets by name" "images $images hits $hits (whole $whole_hits) loss sum $lossum (whole $(json "$out" loss)) $(cat "$WORK/parts.err")"; fi

# --- a class the checkpoint does not know: one line naming it and the checkpoint's classes (as many classes
#     as the checkpoint: a mapping by position scored such a folder silently)
mkdir -p "$WORK/other/val"
cp -r "$WORK/img/val/cat" "$WORK/img/val/dog" "$WORK/other/val/"
ln -s "$CIFAR10/test/bird" "$WORK/other/val/bird"
ln -s "$WORK/other/val" "$WORK/other/train"
expect_error "unknown class refused" "class bird that the checkpoint does not know \(its 3 classes: airplane, cat, dog\)" \
  eval --checkpoint "$R/best.rmck" --data "imagefolder:$WORK/other"

# --- a folder as it comes from an archive: an empty class folder and __MACOSX are not classes (as in train),
#     so they are neither refused as unknown classes nor counted; one warning line names them
mkdir -p "$WORK/messy/val/__MACOSX/cat" "$WORK/messy/val/empty"
cp -r "$WORK/img/val/cat" "$WORK/messy/val/"
cp "$(ls -d "$WORK"/messy/val/cat/* | head -n 1)" "$WORK/messy/val/__MACOSX/cat/._x.jpg"
o=$("$RMTRAIN" eval --checkpoint "$R/best.rmck" --data "imagefolder:$WORK/messy" --json 2> "$WORK/messy.err")
if [ "$(json "$o" images)" = 12 ] && [ "$(wc -l < "$WORK/messy.err")" -eq 1 ] \
   && grep -q "skipped 1 hidden folder(s): __MACOSX; 1 folder(s) with no .jpg, .jpeg or .png image (not classes): empty" "$WORK/messy.err"
then ok "eval on a messy folder: empty and hidden folders skipped as in train, said in one line"
else fail "eval on a messy folder" "$o $(cat "$WORK/messy.err")"; fi

# --- no --data: the run's own data (its config.yaml beside the checkpoint), said in one line
o=$("$RMTRAIN" eval --checkpoint "$R/best.rmck" --json 2> "$WORK/nodata.err")
if [ "$(json "$o" top1)" = "$(json "$out" top1)" ] && [ "$(json "$o" images)" = 36 ] \
   && grep -q -- "--data not given: evaluating on the run's own data, imagefolder:$WORK/img ($R/config.yaml)" "$WORK/nodata.err"
then ok "eval without --data: the run's own data, said"; else fail "eval without --data" "$o $(cat "$WORK/nodata.err")"; fi

# --- progress on a terminal (script(1) gives the command a pty): eval's line on stderr, in place, then wiped
#     before the result; train's during each epoch's evaluation (36 images: 5 batches of 8, 3 of 16)
script -qec "'$RMTRAIN' eval --checkpoint '$R/best.rmck' --data 'imagefolder:$WORK/img' --batch-size 8 --json" /dev/null \
  > "$WORK/tty-eval.txt" 2>&1
if grep -qE $'\revaluating 5/5  [0-9]+ img/s  ETA 00:00\r +\r\\{"checkpoint"' "$WORK/tty-eval.txt"
then ok "eval's progress line on a terminal"; else fail "eval progress" "$(od -c "$WORK/tty-eval.txt" | head -n 8)"; fi
script -qec "'$RMTRAIN' train --model resnet8 --data 'imagefolder:$WORK/img' --image-size 16 --epochs 1 --batch-size 16 --out '$WORK/tty-run'" \
  /dev/null > "$WORK/tty-train.txt" 2>&1
if grep -qE $'\repoch 1/1  evaluating 3/3  [0-9]+ img/s  ETA [0-9:]+\r +\repoch 1/1  train_loss' "$WORK/tty-train.txt"
then ok "train's progress line during evaluation"; else fail "train progress" "$(od -c "$WORK/tty-train.txt" | tail -n 12)"; fi

finish eval
