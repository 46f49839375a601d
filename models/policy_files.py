"""Names of the files in a saved policy directory, importable without Keras (option checks
and the MLflow lookup need them before any model is loaded)."""

FORMAT_NAME = "humanoid-imitation/policy"
FORMAT_VERSION = 1
POLICY_FILE = "policy.keras"
SPEC_FILE = "spec.json"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
