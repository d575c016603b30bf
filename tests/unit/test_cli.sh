#!/usr/bin/env bash
# The cltrain tool end to end: usage errors (one line naming the option, exit status 2),
# runtime errors (exit 1), a short real training run on Fashion-MNIST whose loss must
# fall, resume equality (an interrupted and resumed run logs the same losses as an
# uninterrupted one, digit for digit), NaN detection, Ctrl-C, eval and compare.
# Runs other than the Fashion-MNIST one use a small synthetic dataset in IDX format
# written here, so the suite stays fast on a shared two-core machine.
#
# usage: test_cli.sh PATH/TO/cltrain
set -u
cltrain=${1:?usage: test_cli.sh PATH/TO/cltrain}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
checks=0

ok() { checks=$((checks + 1)); }
bad() {
  echo "FAIL: $*" >&2
  fail=1
  checks=$((checks + 1))
}

# expect_usage "text the error line must contain" ARGS...: exit status 2, exactly one line
# on stderr that starts with "cltrain", nothing on stdout.
expect_usage() {
  local want=$1
  shift
  "$cltrain" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 2 ]; then
    bad "cltrain $* exited $rc, expected 2 ($(cat "$tmp/err"))"
  elif [ "$lines" -ne 1 ]; then
    bad "cltrain $*: expected one error line, got $lines: $(cat "$tmp/err")"
  elif ! grep -q -- "$want" "$tmp/err" || ! grep -q '^cltrain' "$tmp/err"; then
    bad "cltrain $*: the error '$(cat "$tmp/err")' does not mention '$want'"
  elif [ -s "$tmp/out" ]; then
    bad "cltrain $*: printed on stdout: $(cat "$tmp/out")"
  else
    ok
  fi
}

# ---- usage errors (no device or dataset needed) -----------------------------------------
expect_usage "unknown command" frobnicate
"$cltrain" >/dev/null 2>&1
rc=$?
if [ $rc -eq 2 ]; then ok; else bad "cltrain without a command exited $rc, expected 2"; fi
expect_usage "--lr expects a number > 0, got '-1'" train --lr -1
expect_usage "--lr expects a number > 0, got '0'" train --lr 0
expect_usage "--lr expects a number > 0, got 'abc'" train --lr=abc
expect_usage "--lr needs a value" train --lr
expect_usage "--batch-size expects a whole number from 1" train --batch-size 0
expect_usage "--batch-size expects a whole number from 1" train --batch-size -3
expect_usage "--epochs expects a whole number from 1" train --epochs 0
expect_usage "--betas expects a number in \[0, 1), got '1'" train --betas 0.9,1
expect_usage "--betas expects two numbers" train --betas 0.9
expect_usage "--momentum applies to sgd and rmsprop" train --momentum 0.9
expect_usage "--nesterov needs --momentum > 0" train --optimizer sgd --nesterov
expect_usage "--optimizer expects sgd, adam, adamw, rmsprop or adagrad, got 'lion'" train --optimizer lion
expect_usage "--loss expects ce, bce or mse" train --loss hinge
expect_usage "unknown option '--frobnicate'" train --frobnicate
expect_usage "unknown option '--lr'" devices --lr
expect_usage "--quiet and --verbose" train --quiet --verbose
expect_usage "--early-stop needs a validation split" train --early-stop 2
expect_usage "--label-smoothing applies to --loss ce" train --loss mse --label-smoothing 0.1
expect_usage "--label-smoothing expects a number in \[0, 1\]" train --label-smoothing 2
expect_usage "--step-size applies to --schedule step" train --step-size 2
expect_usage "--schedule expects" train --schedule linear
expect_usage "--clip-norm expects a number > 0" train --clip-norm 0
expect_usage "--warmup does not combine with --schedule onecycle" train --schedule onecycle --warmup 3
expect_usage "takes no value" train --amsgrad=1
expect_usage "unexpected argument 'extra'" train extra
expect_usage "--checkpoint FILE is required" eval
expect_usage "--config 'lion,lr=1': starts with the optimizer" compare --config lion,lr=1
expect_usage "--config: lr expects a number > 0" compare --config adam,lr=-2
expect_usage "unknown key 'foo'" compare --config adam,foo=1
expect_usage "--augment and --no-augment" train --augment --no-augment

for cmd in train compare eval devices gemm; do
  if "$cltrain" $cmd --help >"$tmp/help" 2>&1 && grep -q "usage: cltrain $cmd" "$tmp/help"; then ok; else bad "cltrain $cmd --help"; fi
done
for opt in --model --loss --optimizer --lr --momentum --nesterov --weight-decay --no-decay-bias --betas --eps \
  --alpha --centered --amsgrad --schedule --warmup --clip-norm --label-smoothing --epochs \
  --batch-size --seed --device --no-shuffle --max-steps --log --log-every --plot \
  --tensorboard --quiet --verbose --save --resume --early-stop --skip-nonfinite --val \
  --augment --mean --std --classes --dataset --data; do
  if "$cltrain" train --help | grep -q -- "$opt\b"; then ok; else bad "train --help does not list $opt"; fi
done
if "$cltrain" help | grep -q "train" && "$cltrain" help | grep -q "devices" && "$cltrain" help | grep -q "gemm"; then ok; else bad "help lists the commands"; fi

# ---- from here on a device is needed ------------------------------------------------------
if ! "$cltrain" devices >/dev/null 2>&1; then
  echo "SKIP: no OpenCL device; the runs below were not tried ($checks checks)"
  [ $fail -eq 0 ] && exit 77
  exit 1
fi

# runtime errors exit with 1 and one line
"$cltrain" train --data "$tmp/nowhere" --quiet >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "nowhere" "$tmp/err"; then ok; else bad "missing data: exit $rc, $(cat "$tmp/err")"; fi

# A small synthetic dataset in Fashion-MNIST's format: class k brightens the band of rows
# 2k..2k+2 of 28x28 noise. 640 training and 128 test images.
python3 - "$tmp/syn" <<'EOF'
import gzip, os, random, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
rng = random.Random(5)
def write(prefix, n):
    imgs = bytearray()
    labs = bytearray()
    for i in range(n):
        k = rng.randrange(10)
        labs.append(k)
        for r in range(28):
            for c in range(28):
                v = rng.randrange(100)
                if 2 * k <= r < 2 * k + 3:
                    v += 150
                imgs.append(v)
    with gzip.open(os.path.join(d, prefix + "-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(imgs))
    with gzip.open(os.path.join(d, prefix + "-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labs))
write("train", 640)
write("t10k", 128)
EOF
syn=(--data "$tmp/syn" --model "conv(8,3,pad=1) relu maxpool(2) flatten dropout(0.2) linear(10)")

# ---- a short real run on Fashion-MNIST: the loss falls ----------------------------------
fm=/usr/share/datasets/fashion-mnist
if [ -e "$fm/train-images-idx3-ubyte.gz" ] || [ -e "$fm/train-images-idx3-ubyte" ]; then
  if "$cltrain" train --max-steps 30 --log-every 5 --log "$tmp/fm.csv" --eval-batch-size 1000 \
    >"$tmp/out" 2>"$tmp/err"; then ok; else bad "Fashion-MNIST run failed: $(cat "$tmp/err")"; fi
  if [ -s "$tmp/fm.csv" ] && head -1 "$tmp/fm.csv" | grep -q '^kind,epoch,step,loss'; then ok; else bad "no CSV log"; fi
  # first two logged losses (steps 5, 10) vs the last two (25, 30)
  if awk -F, '$1=="batch"{l[n++]=$4} END{if (n!=6) exit 1; a=(l[0]+l[1])/2; b=(l[4]+l[5])/2; printf "loss %.3f -> %.3f\n", a, b; exit !(b < 0.8*a)}' "$tmp/fm.csv"; then ok; else bad "the loss did not fall: $(cat "$tmp/fm.csv")"; fi
  if grep -q "test accuracy" "$tmp/out"; then ok; else bad "no summary: $(cat "$tmp/out")"; fi
else
  echo "note: $fm not found; the Fashion-MNIST run was left out"
fi

# ---- determinism: the same seed twice gives byte-identical loss logs (every column but the
# timing ones) and byte-identical checkpoints, weights and training state (saved under the
# same name in two folders, since the state file records the weights file's name)
mkdir -p "$tmp/det1" "$tmp/det2"
for d in det1 det2; do
  "$cltrain" train "${syn[@]}" --augment --max-steps 25 --log-every 1 --quiet \
    --log "$tmp/$d/log.csv" --save "$tmp/$d/ck.safetensors" >/dev/null 2>"$tmp/err" || bad "determinism run $d: $(cat "$tmp/err")"
done
if cmp -s <(cut -d, -f1-5,8- "$tmp/det1/log.csv") <(cut -d, -f1-5,8- "$tmp/det2/log.csv") &&
  [ "$(grep -c '^batch' "$tmp/det1/log.csv")" -eq 25 ]; then ok; else bad "two runs with one seed logged different losses"; fi
if cmp -s "$tmp/det1/ck.safetensors" "$tmp/det2/ck.safetensors" &&
  cmp -s "$tmp/det1/ck.state.safetensors" "$tmp/det2/ck.state.safetensors"; then ok; else bad "two runs with one seed saved different checkpoints"; fi

# ---- resume: an uninterrupted run of 2 epochs (20 batches each) against runs saved
# mid-epoch (after step 10) and at the epoch boundary, then resumed: the same losses, step
# for step, and the same epoch rows (mean training loss, test loss and accuracy).
# (--t-max is explicit so that run D's --epochs 1 does not shorten the schedule)
common=("${syn[@]}" --augment --schedule cosine --schedule-unit batch --t-max 37 --warmup 3 --batch-size 32 --log-every 1 --epochs 2 --quiet)
"$cltrain" train "${common[@]}" --log "$tmp/a.csv" >/dev/null 2>"$tmp/err" || bad "run A: $(cat "$tmp/err")"
"$cltrain" train "${common[@]}" --max-steps 10 --save "$tmp/ck.safetensors" >/dev/null 2>"$tmp/err" || bad "run B: $(cat "$tmp/err")"
"$cltrain" train "${common[@]}" --resume "$tmp/ck.safetensors" --log "$tmp/c.csv" >/dev/null 2>"$tmp/err" || bad "run C: $(cat "$tmp/err")"
"$cltrain" train "${common[@]}" --epochs 1 --save "$tmp/ck1.safetensors" >/dev/null 2>"$tmp/err" || bad "run D: $(cat "$tmp/err")"
"$cltrain" train "${common[@]}" --resume "$tmp/ck1.safetensors" --log "$tmp/e.csv" >/dev/null 2>"$tmp/err" || bad "run E: $(cat "$tmp/err")"
# stopped by --max-steps after the epoch's last batch but before its end (evaluation)
"$cltrain" train "${common[@]}" --max-steps 20 --save "$tmp/ck2.safetensors" >/dev/null 2>"$tmp/err" || bad "run F: $(cat "$tmp/err")"
"$cltrain" train "${common[@]}" --resume "$tmp/ck2.safetensors" --log "$tmp/g.csv" >/dev/null 2>"$tmp/err" || bad "run G: $(cat "$tmp/err")"
rows() { # FILE FIRST_STEP: step, loss, lr of batch rows after FIRST_STEP; epoch rows' results
  awk -F, -v s="$2" '($1=="batch" && $3>s) {print $3, $4, $5} ($1=="epoch" && $3>s) {print "epoch", $2, $3, $8, $9, $10}' "$1"
}
rows "$tmp/a.csv" 10 >"$tmp/a10.txt"
rows "$tmp/c.csv" 10 >"$tmp/c10.txt"
if [ "$(wc -l <"$tmp/a10.txt")" -eq 32 ] && cmp -s "$tmp/a10.txt" "$tmp/c10.txt"; then ok; else
  bad "resumed (mid-epoch) losses differ from the uninterrupted run:"; diff "$tmp/a10.txt" "$tmp/c10.txt" >&2
fi
rows "$tmp/a.csv" 20 >"$tmp/a20.txt"
rows "$tmp/e.csv" 20 >"$tmp/e20.txt"
if [ "$(wc -l <"$tmp/a20.txt")" -eq 21 ] && cmp -s "$tmp/a20.txt" "$tmp/e20.txt"; then ok; else
  bad "resumed (epoch boundary) losses differ from the uninterrupted run:"; diff "$tmp/a20.txt" "$tmp/e20.txt" >&2
fi
rows "$tmp/g.csv" 20 >"$tmp/g20.txt"
if cmp -s "$tmp/a20.txt" "$tmp/g20.txt"; then ok; else
  bad "resumed (after the last batch, before the epoch's end) losses differ:"; diff "$tmp/a20.txt" "$tmp/g20.txt" >&2
fi
if [ -s "$tmp/ck.safetensors" ] && [ -s "$tmp/ck.state.safetensors" ]; then ok; else bad "checkpoint files missing"; fi
# resuming with another loss is refused as a usage error
"$cltrain" train "${syn[@]}" --loss mse --resume "$tmp/ck.safetensors" --quiet >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 2 ] && grep -q "loss ce" "$tmp/err"; then ok; else bad "resume with another loss: exit $rc, $(cat "$tmp/err")"; fi
# --resume with the run's own --log keeps its rows up to the checkpoint and drops the ones
# after it (here a made-up row for step 11, as a crash after the save leaves): the file
# then holds the uninterrupted run's losses once each, elapsed times never going back
"$cltrain" train "${common[@]}" --max-steps 10 --save "$tmp/ck3.safetensors" --log "$tmp/k.csv" >/dev/null 2>"$tmp/err" || bad "run K: $(cat "$tmp/err")"
head -11 "$tmp/k.csv" >"$tmp/k10.csv"
echo "batch,1,11,99,0.001,100,9,,," >>"$tmp/k.csv"
"$cltrain" train "${common[@]}" --resume "$tmp/ck3.safetensors" --log "$tmp/k.csv" >/dev/null 2>"$tmp/err" || bad "run L: $(cat "$tmp/err")"
rows "$tmp/k.csv" 0 >"$tmp/k0.txt"
rows "$tmp/a.csv" 0 >"$tmp/a0.txt"
if cmp -s "$tmp/a0.txt" "$tmp/k0.txt" && cmp -s "$tmp/k10.csv" <(head -11 "$tmp/k.csv") &&
  awk -F, 'NR > 1 { if ($7 + 0 < last) exit 1; last = $7 + 0 }' "$tmp/k.csv"; then ok; else
  bad "resumed log: not the uninterrupted run's rows once each:"; diff "$tmp/a0.txt" "$tmp/k0.txt" >&2
fi
# ... and a file that is not such a log is refused, untouched
echo "not a log" >"$tmp/x.csv"
"$cltrain" train "${common[@]}" --resume "$tmp/ck3.safetensors" --log "$tmp/x.csv" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--log .*x.csv" "$tmp/err" && [ "$(cat "$tmp/x.csv")" = "not a log" ]; then ok; else
  bad "--resume with a foreign --log: exit $rc, $(cat "$tmp/err")"
fi
# ... while an empty one is a new log
: >"$tmp/y.csv"
"$cltrain" train "${common[@]}" --resume "$tmp/ck3.safetensors" --log "$tmp/y.csv" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && [ "$(head -1 "$tmp/y.csv" | cut -d, -f1)" = kind ] &&
  [ "$(grep -c '^batch' "$tmp/y.csv")" -eq "$(awk -F, '$1 == "batch" && $3 > 10' "$tmp/a.csv" | wc -l)" ]; then ok; else
  bad "--resume with an empty --log: exit $rc, $(cat "$tmp/err")"
fi

# ---- a huge learning rate: a clear message, exit 1 -----------------------------------------
"$cltrain" train "${syn[@]}" --optimizer sgd --lr 1e30 --log-every 2 --epochs 3 --quiet >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "at step [0-9]" "$tmp/err" && grep -q "learning rate" "$tmp/err"; then ok; else bad "NaN run: exit $rc, $(cat "$tmp/err")"; fi
# ... and with --skip-nonfinite it goes on until the parameters are hopeless (exit 1) or ends
"$cltrain" train "${syn[@]}" --optimizer sgd --lr 1e30 --skip-nonfinite --epochs 1 --quiet >"$tmp/out" 2>"$tmp/err"
rc=$?
if { [ $rc -eq 1 ] && grep -q "consecutive" "$tmp/err"; } || { [ $rc -eq 0 ] && grep -q "skipped" "$tmp/out"; }; then ok; else bad "skip-nonfinite: exit $rc, $(cat "$tmp/err")"; fi

# ---- Ctrl-C saves and exits with 130 -------------------------------------------------------
"$cltrain" train "${syn[@]}" --epochs 1000 --log-every 1 --log "$tmp/int.csv" --save "$tmp/int.safetensors" --quiet >/dev/null 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$tmp/int.csv" ] && [ "$(wc -l <"$tmp/int.csv")" -ge 3 ] && break
  sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && [ -s "$tmp/int.safetensors" ] && grep -q "interrupted" "$tmp/err"; then ok; else bad "Ctrl-C: exit $rc, $(cat "$tmp/err")"; fi

# ---- eval ----------------------------------------------------------------------------------
"$cltrain" train "${syn[@]}" --epochs 2 --save "$tmp/m.safetensors" --plot "$tmp/loss.svg" --quiet >"$tmp/out" 2>"$tmp/err" || bad "training for eval: $(cat "$tmp/err")"
acc=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
if "$cltrain" eval --checkpoint "$tmp/m.safetensors" --data "$tmp/syn" --plot "$tmp/conf.svg" >"$tmp/eval" 2>"$tmp/err"; then ok; else bad "eval: $(cat "$tmp/err")"; fi
if grep -q "^accuracy $acc%" "$tmp/eval"; then ok; else bad "eval accuracy differs from training's $acc%: $(head -3 "$tmp/eval")"; fi
if [ "$(awk '/^confusion matrix/{f=1; next} f' "$tmp/eval" | wc -l)" -eq 11 ]; then ok; else bad "no 10x10 confusion matrix: $(cat "$tmp/eval")"; fi
if grep -q "<svg" "$tmp/conf.svg" && grep -q "<svg" "$tmp/loss.svg"; then ok; else bad "plots missing"; fi
if [ -s "$tmp/m.best.safetensors" ]; then ok; else bad "no best checkpoint"; fi

# ---- the other losses: bce on two classes (one output), mse on one-hot targets ----------
"$cltrain" train "${syn[@]}" --loss bce --classes 3,7 --epochs 1 --save "$tmp/bce.safetensors" --tensorboard "$tmp/tb" --quiet >"$tmp/out" 2>"$tmp/err" || bad "bce run: $(cat "$tmp/err")"
if grep -q "test accuracy" "$tmp/out" && ls "$tmp"/tb/events.out.tfevents.* >/dev/null 2>&1; then ok; else bad "bce run output: $(cat "$tmp/out")"; fi
# eval takes the task (bce, classes 3 and 7) from the checkpoint: a 2 x 2 matrix
if "$cltrain" eval --checkpoint "$tmp/bce.safetensors" --data "$tmp/syn" >"$tmp/eval" 2>"$tmp/err" &&
  [ "$(awk '/^confusion matrix/{f=1; next} f' "$tmp/eval" | wc -l)" -eq 3 ] && grep -q "^Dress" "$tmp/eval" && grep -q "^Sneaker" "$tmp/eval"; then ok; else bad "bce eval: $(cat "$tmp/eval" "$tmp/err")"; fi
if "$cltrain" train "${syn[@]}" --loss mse --epochs 1 --quiet >"$tmp/out" 2>"$tmp/err" && grep -q "test accuracy" "$tmp/out"; then ok; else bad "mse run: $(cat "$tmp/err")"; fi

# ---- compare -------------------------------------------------------------------------------
if "$cltrain" compare "${syn[@]}" --epochs 1 --plot "$tmp/cmp.svg" --log "$tmp/cmp.csv" --quiet >"$tmp/out" 2>"$tmp/err"; then ok; else bad "compare: $(cat "$tmp/err")"; fi
if [ "$(grep -c '^adam,lr=1e-3\|^sgd,lr=1e-2' "$tmp/out")" -eq 3 ] && grep -q "<svg" "$tmp/cmp.svg" && head -1 "$tmp/cmp.csv" | grep -q '^run,kind'; then ok; else bad "compare output: $(cat "$tmp/out")"; fi

echo "$checks checks, $([ $fail -eq 0 ] && echo "all passed" || echo "some FAILED")"
exit $fail
