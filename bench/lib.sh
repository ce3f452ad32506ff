# shellcheck shell=bash
# Shell helpers shared by bench/run.sh and bench/profile.sh (sourced).

# size_bytes LABEL: 64M -> 67108864 (K/M/G = KiB/MiB/GiB; "MiB"/"MB" also read).
size_bytes() {
  local label=${1^^} number unit
  label=${label%IB}; label=${label%B}
  number=${label%[KMG]}; unit=${label#"$number"}
  case $unit in
    K) echo $((number << 10)) ;; M) echo $((number << 20)) ;;
    G) echo $((number << 30)) ;; '') echo "$number" ;;
  esac
}
