# Shared by the ci/ scripts (sourced, not run).

ci_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Flags of every build that need not be cold: --config=ci, and the CI run's shared remote cache
# when scripts/test.sh started one (ICOS_CI_REMOTE_CACHE), so the tools compile once per run.
ci_flags=(--config=ci)
if [[ -n "${ICOS_CI_REMOTE_CACHE:-}" ]]; then
  ci_flags+=(--config=remote "--remote_cache=$ICOS_CI_REMOTE_CACHE")
fi

# The mnemonics of the actions an execution log shows executed (not served from a cache), sorted,
# one line: "CargoBuild IcosExt4 ". $1: the log.
executed_mnemonics() { python3 "$ci_dir/exec_log.py" executed "$1" | sort | tr '\n' ' '; }

# Bazel's summary line of a build log: "INFO: 18 processes: 16 remote cache hit, 2 internal."
processes_line() { grep -E '^INFO: [0-9]+ process' "$1" | tail -n 1; }
