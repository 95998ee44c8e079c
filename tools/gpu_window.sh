#!/usr/bin/env bash
# One prepared command for a short GPU lease: render fresh data, train SQ-GAN and the segmenter from
# the shipped weights, and leave the files to ship in OUTDIR at every moment.
#
#   tools/gpu_window.sh --prepare   here, with a package registry: cp312 wheels into .whl/ and the
#                                   GL loader packages into .gl/ (both ignored by git, carried)
#   tools/gpu_window.sh OUTDIR      on the lease (one H200, 16 cores, Python 3.12, torch 2.11, no
#                                   registry; a copy of the working tree), e.g. the device call
#                                   run(command="bash tools/gpu_window.sh $OUT", carry=[".whl", ".gl"],
#                                       timeout_s=600)
#
# The window has a hard deadline (WINDOW_MIN, default 8.5 minutes, all steps included):
#   1. installs what the lease lacks from .whl/ and .gl/ (skipped where it imports already);
#   2. renders N_SEEDS fresh simulator seeds (FIRST_SEED: default 100 past the next unused one, so a
#      CPU run started from the same shipped weights never sees the same seeds) and the validation
#      seeds, JOBS at a time, for at most RENDER_SEC seconds;
#   3. trains `sqgan train joint` (configs/train/small_gpu_joint.yaml: frames on the GPU, augmented
#      there, bf16, batch 32) and `sqgan train segmenter` side by side, both from the shipped files and
#      both with the learning rate decayed to the deadline;
#      With CONCEALER=1 (default) a third trainer, `sqgan train concealer`, trains the RSU's
#      bidirectional concealer for the *shipped* codec (warm from the shipped concealer when there is
#      one): a GPU-trained codec that wins needs its concealer retrained for its model id afterwards.
#   4. every COPY_SEC seconds copies what they keep (best by validation, validated every 90 s) into
#      OUTDIR: sqgan_small.pt, sqgan_val.json, segmenter_fastscnn.pt, segmenter_fastscnn.json,
#      concealer_bidirectional.pt;
#   5. ends with `sqgan bench codec --device DEVICE --json` for `small` and `paper`
#      (bench_small.json, bench_paper.json). window.log holds everything printed. 8 files in all
#      (a lease returns at most 8 of at most 16 MB).
# Nothing is shipped by this script: compare OUTDIR/sqgan_small.pt with `sqgan eval --model ...
# --baseline shipped` and copy it into sqgan_core/weights/ only when it wins (docs/training.md).
#
# CPU rehearsal (CI runs it, tests/tools/test_gpu_window.py): DEVICE=cpu WINDOW_MIN=2 with a tiny
# TRAIN_CONFIG and N_SEEDS/FRAMES/N_VAL/VAL_FRAMES of a few frames.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
  set -e
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  grep -qxF '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >> .git/info/exclude
  mkdir -p .whl .gl
  # What the lease lacks (docs: shared/REFERENCE.md 6, the device tool's package list), pinned as in
  # requirements.txt; their other needs (numpy, opencv, yaml, rich, matplotlib, scipy, regex, ...) are there.
  local wheels=(constriction==0.5.0 moderngl==5.13.0 glcontext==3.1.0 mmengine==0.10.7 mmcv-lite==2.1.0
                mmsegmentation==1.2.2 ftfy==6.3.1 wcwidth==0.9.4 addict==2.4.0 yapf==0.43.0 termcolor==3.3.0
                prettytable==3.18.0 platformdirs==4.14.9)
  local plat=()
  for n in 28 27 24 17; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
  plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
  for w in "${wheels[@]}"; do
    ls .whl/"$(echo "${w%%==*}" | tr - _)"-"${w##*==}"-*.whl >/dev/null 2>&1 && continue
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${plat[@]}" -d .whl "$w" || { echo "prepare: no cp312 wheel for $w" >&2; return 1; }
  done
  # GL loader libraries (glvnd): the lease's NVIDIA driver provides EGL itself.
  if ! ls .gl/libegl1_*.deb >/dev/null 2>&1; then
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    mkdir -p /tmp/amd64/partial
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  fi
  echo "prepare: $(ls .whl | wc -l) wheels ($(du -sh .whl | cut -f1)) in .whl/, $(ls .gl | wc -l) packages in .gl/"
  echo "prepare: on the lease run: bash tools/gpu_window.sh \$OUT  (carry .whl and .gl)"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit $?
fi
OUT=${1:?usage: tools/gpu_window.sh OUTDIR | --prepare}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/window.log") 2>&1

WINDOW_MIN=${WINDOW_MIN:-8.5}
DEVICE=${DEVICE:-cuda}
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}  # the lease has no .venv
N_SEEDS=${N_SEEDS:-48}
export FRAMES=${FRAMES:-32} STRIDE=${STRIDE:-6} N_VAL=${N_VAL:-8} VAL_FRAMES=${VAL_FRAMES:-16}
JOBS=${JOBS:-$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))}
RENDER_SEC=${RENDER_SEC:-120}
COPY_SEC=${COPY_SEC:-20}
BENCH_SEC=${BENCH_SEC:-40}  # per benchmark
TRAIN_CONFIG=${TRAIN_CONFIG:-configs/train/small_gpu_joint.yaml}
SEG_BATCH=${SEG_BATCH:-32}
SEG_CROP=${SEG_CROP:-256 512}
SEG_WORKERS=${SEG_WORKERS:-6}
SEG_VAL_SEC=${SEG_VAL_SEC:-90}
BENCH_ITERS=${BENCH_ITERS:-20}
BENCH_ARGS=${BENCH_ARGS:---warmup 2}  # the rehearsal adds a small --height/--width
GRACE_SEC=${GRACE_SEC:-45}  # after their own deadline, the trainers validate and save before the hard stop
THREADS=${THREADS:-}  # torch threads per trainer (CPU rehearsal: 1)
RUNS=${RUNS:-runs/gpu_window}
CONCEALER=${CONCEALER:-1}
CONCEAL_BATCH=${CONCEAL_BATCH:-64}
CONCEAL_FRAMES=${CONCEAL_FRAMES:-1500}
T0=$(date +%s)
END=$(awk "BEGIN {printf \"%d\", $T0 + $WINDOW_MIN * 60}")
left() { echo $(( END - $(date +%s) )); }
log() { echo "[$(date +%T) +$(( $(date +%s) - T0 ))s] $*"; }
log "window of $WINDOW_MIN min on $DEVICE; outputs in $OUT"

# 1. install from the carried files what this machine lacks
if [ -d .gl ] && ls .gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && ! ldconfig -p | grep -q 'libEGL.so.1 '; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  log "GL loader libraries unpacked from .gl/"
fi
if ! ls /usr/share/glvnd/egl_vendor.d/*nvidia* >/dev/null 2>&1 && [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
if ! "$PY" -c "import constriction, moderngl, mmseg, mmengine, ftfy" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sqgan_site .whl/*.whl \
      && export PYTHONPATH=/tmp/sqgan_site${PYTHONPATH:+:$PYTHONPATH}
    log "wheels installed from .whl/ into /tmp/sqgan_site"
  else
    log "WARNING: constriction/moderngl/mmseg missing and no .whl/ (run tools/gpu_window.sh --prepare first)"
  fi
fi
if ! "$PY" -c "import importlib.metadata as m; m.distribution('sqgan')" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . && log "sqgan installed (editable)"
fi
SQGAN=("$PY" -m sqgan_core)
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 2. fresh data: validation seeds first, then training seeds, until RENDER_SEC
FIRST_SEED=${FIRST_SEED:-$(( $(bash tools/next_seed.sh "$PY") + 100 ))}
DATA=${DATA:-data/window_${FIRST_SEED}}
log "rendering seeds $FIRST_SEED-$((FIRST_SEED + N_SEEDS - 1)) ($FRAMES frames, stride $STRIDE) + $N_VAL validation seeds, $JOBS jobs, at most ${RENDER_SEC}s"
SQGAN="$PY -m sqgan_core" JOBS=$JOBS timeout "$RENDER_SEC" bash tools/make_training_data.sh "$DATA" "$FIRST_SEED" "$N_SEEDS" \
  || log "rendering stopped at its time limit (exit $?); training on what is there"
# an export stopped midway can leave an image without its label: drop those
for img in $(find "$DATA/leftImg8bit" -name '*_leftImg8bit.png' 2>/dev/null); do
  lab=${img/leftImg8bit\//gtFine/}; lab=${lab%_leftImg8bit.png}_gtFine_labelTrainIds.png
  [ -f "$lab" ] || rm -f "$img"
done
n_train=$(find "$DATA/leftImg8bit/train" -name '*.png' 2>/dev/null | wc -l)
n_val=$(find "$DATA/leftImg8bit/val" -name '*.png' 2>/dev/null | wc -l)
log "data: $n_train training and $n_val validation frames"
if [ "$n_train" -eq 0 ] || [ "$n_val" -eq 0 ]; then
  log "ERROR: no frames rendered (see above); nothing to train"
  exit 1
fi

# 3. train side by side until the deadline, keeping 2 x BENCH_SEC + 10 s for the benchmarks and
#    GRACE_SEC for the trainers' last validation and save after their own clock runs out
mkdir -p "$RUNS"
reserve=$(( 2 * BENCH_SEC + 10 ))
train_sec=$(( $(left) - reserve - GRACE_SEC ))
if [ "$train_sec" -lt 30 ]; then
  log "ERROR: only ${train_sec}s left for training"
  exit 1
fi
train_min=$(awk "BEGIN {printf \"%.2f\", $train_sec / 60}")
log "training for $train_min min: joint ($TRAIN_CONFIG) and segmenter"
"${SQGAN[@]}" train joint --data "$DATA" --out "$RUNS/joint" --init shipped --device "$DEVICE" \
  --train-config "$TRAIN_CONFIG" --max-minutes "$train_min" ${THREADS:+--threads "$THREADS"} > "$RUNS/joint.log" 2>&1 &
pj=$!
seg_env=(env)  # mmengine picks CUDA whenever it sees one: hide it for a CPU run
[ "$DEVICE" = cpu ] && seg_env+=(CUDA_VISIBLE_DEVICES=)
[ -n "$THREADS" ] && seg_env+=(OMP_NUM_THREADS="$THREADS")
# shellcheck disable=SC2086
"${seg_env[@]}" "${SQGAN[@]}" train segmenter --data "$DATA" --work-dir "$RUNS/segmenter" --init shipped \
  --output "$RUNS/segmenter_fastscnn.pt" --iters 1000000 --batch-size "$SEG_BATCH" --crop $SEG_CROP \
  --workers "$SEG_WORKERS" --val-interval 1000000 --val-seconds "$SEG_VAL_SEC" --max-minutes "$train_min" \
  > "$RUNS/segmenter.log" 2>&1 &
ps=$!
pc=""
if [ "$CONCEALER" = 1 ]; then
  cinit=()
  [ -f sqgan_core/weights/concealer_bidirectional.pt ] && cinit=(--init shipped)
  "${SQGAN[@]}" train concealer --data "$DATA" --out "$RUNS/concealer" --model shipped "${cinit[@]}" \
    --device "$DEVICE" --batch-size "$CONCEAL_BATCH" --frames "$CONCEAL_FRAMES" --max-minutes "$train_min" \
    ${THREADS:+--threads "$THREADS"} > "$RUNS/concealer.log" 2>&1 &
  pc=$!
fi

copy_out() {  # atomic copies, so OUTDIR never holds a half-written file
  local src dst
  for pair in "$RUNS/joint/best.pt:sqgan_small.pt" "$RUNS/joint/val.json:sqgan_val.json" \
              "$RUNS/segmenter_fastscnn.pt:segmenter_fastscnn.pt" "$RUNS/segmenter_fastscnn.json:segmenter_fastscnn.json" \
              "$RUNS/concealer/concealer_bidirectional.pt:concealer_bidirectional.pt"; do
    src=${pair%%:*}; dst=$OUT/${pair##*:}
    if [ -f "$src" ] && { [ ! -f "$dst" ] || [ "$src" -nt "$dst" ]; }; then
      cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
    fi
  done
}
while kill -0 $pj 2>/dev/null || kill -0 $ps 2>/dev/null || { [ -n "$pc" ] && kill -0 "$pc" 2>/dev/null; }; do
  sleep "$COPY_SEC" & wait $!
  copy_out
  if [ "$(left)" -le "$reserve" ]; then
    log "deadline: stopping the trainers"
    kill $pj $ps $pc 2>/dev/null
    break
  fi
done
wait $pj; sj=$?
wait $ps; ss=$?
sc=0
[ -n "$pc" ] && { wait "$pc"; sc=$?; }
copy_out
# 143 = our SIGTERM at the hard deadline: the files each trainer saved last stand (they are atomic).
for pair in "joint:$sj" "segmenter:$ss" ${pc:+"concealer:$sc"}; do
  name=${pair%%:*}; code=${pair##*:}
  case $code in
    0) log "$name done: $(tail -c 600 "$RUNS/$name.log" | tr '\r' '\n' | grep '^{' | tail -1)" ;;
    143) log "$name stopped at the deadline; its last saved files stand" ;;
    *) log "$name FAILED (exit $code):"; tail -20 "$RUNS/$name.log" ;;
  esac
done

# 5. codec latency on this device, both configs
for cfg in small paper; do
  b=$(( $(left) < BENCH_SEC ? $(left) : BENCH_SEC ))
  if [ "$b" -lt 5 ]; then log "no time left for bench $cfg"; continue; fi
  # shellcheck disable=SC2086
  timeout "$b" "${SQGAN[@]}" bench codec --config "$cfg" --device "$DEVICE" --iters "$BENCH_ITERS" $BENCH_ARGS --json \
    > "$OUT/bench_$cfg.json.tmp" && mv "$OUT/bench_$cfg.json.tmp" "$OUT/bench_$cfg.json" \
    || log "bench $cfg did not finish in ${b}s"
  rm -f "$OUT/bench_$cfg.json.tmp"
done
log "done; $OUT: $(ls "$OUT" | tr '\n' ' ')"
# success: both trainers ended by themselves or at the deadline, and their files came out
[ -f "$OUT/sqgan_small.pt" ] && [ -f "$OUT/segmenter_fastscnn.pt" ] && [[ $sj =~ ^(0|143)$ ]] && [[ $ss =~ ^(0|143)$ ]]
