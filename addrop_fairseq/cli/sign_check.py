"""Sanity check of the attribution's sign (paper section 2.2, Fig. 2).

Trains the same model from the same seed twice on prepared translation data, with AD-DROP on in
every epoch, once dropping among the lowest-attributed keys (``--addrop-strategy low``) and once
among the highest (``high``, the method), then prints both training losses after the same number
of updates: the loss fairseq logs while training (with the masks) and the loss on the training
set without masks (a validation pass over the train subset). Dropping high-attribution positions
should slow fitting, so ``low`` should end lower on both. Expect the masked loss of ``low`` to
fall far below its unmasked one: masks chosen with the gold label leak it, which is the paper's
point (fast fitting of the training data, poor generalisation).

As in section 2.2, the attribution target is the gold label's log-probability by default
(``--target gold``). With ``--target pseudo`` (AD-DROP's own target) a model trained from scratch
attributes its argmax, which for most tokens is not the reference yet, so the two strategies
need not separate in the loss against the reference; that is expected, not a sign error.
"""
import argparse

from addrop_fairseq.cli.policy import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="fairseq binary data dir, e.g. runs/quickstart/data/bin")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--p", type=float, default=0.3)
    parser.add_argument("--q", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", default="gold", choices=["gold", "pseudo"],
                        help="attribution target (section 2.2 uses the gold label)")
    args = parser.parse_args(argv)
    from addrop_fairseq.analysis.sign_check import low_fits_faster, sign_check

    results = {}
    for strategy, losses in sign_check(args.data, args.updates, args.p, args.q, args.seed,
                                       args.target):
        results[strategy] = losses
        print(f"--addrop-strategy {strategy:4s}: training loss after {args.updates} updates: "
              f"{losses[0]:.3f} (with masks), {losses[1]:.3f} (train set, no masks)", flush=True)
    holds = low_fits_faster(results)
    print(f"dropping low-attribution positions fits faster than dropping high ones: "
          f"{'yes' if holds else 'NO'} (target {args.target}, p={args.p}, q={args.q}, "
          f"seed {args.seed})")
    return 0 if holds else 1


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()
