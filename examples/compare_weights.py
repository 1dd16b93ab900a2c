"""Which tensors differ between two saved models? (Shows that BitFit changed only biases.)

python examples/compare_weights.py BEFORE_DIR AFTER_DIR
"""

import sys

import torch

import sgpt


def main(before: str, after: str) -> int:
    a = sgpt.load(before).backbone.state_dict()
    b = sgpt.load(after).backbone.state_dict()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    biases = [k for k in a if "bias" in k]
    print(f"{len(changed)} of {len(a)} tensors changed; {len(biases)} are bias tensors")
    others = [k for k in changed if "bias" not in k]
    print("changed non-bias tensors:", others or "none")
    return 1 if others else 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
