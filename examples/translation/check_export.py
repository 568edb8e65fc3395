"""Compares a translation checkpoint with its addrop-export-hf export, on the data it was trained on.

  python examples/translation/check_export.py CHECKPOINT EXPORTED DATA [--sentences 100]

DATA is a prepare_translation.py directory (raw/, bin/). Prints three lines: the exported
tokenizer against bin/ (every line of every split, both sides), the decoder logits on the test
pairs (teacher-forced), and beam search: generate() with the exported generation settings against
fairseq's SequenceGenerator with fairseq-generate's defaults, on the first --sentences test
sentences.
"""
import argparse
import time

import torch
import transformers
from fairseq import checkpoint_utils
from fairseq.data import data_utils
from fairseq.sequence_generator import SequenceGenerator

import addrop_fairseq  # noqa: F401  (registers the task)
from addrop_fairseq.convert.export import language_pair, read_checkpoint


def batches(lines, size=25):
    for start in range(0, len(lines), size):
        yield start, lines[start:start + size]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("exported")
    parser.add_argument("data")
    parser.add_argument("--sentences", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    _, cfg, _ = read_checkpoint(args.checkpoint)
    source, target = language_pair(cfg, f"{args.data}/bin")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [args.checkpoint], arg_overrides={"data": f"{args.data}/bin"})
    model, dictionary = models[0].eval(), task.target_dictionary
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(args.exported).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.exported)

    def raw(split, lang):
        return open(f"{args.data}/raw/{split}.{lang}", encoding="utf-8").read().split("\n")

    began, same, total = time.time(), 0, 0
    for split in ("train", "valid", "test"):
        for lang in (source, target):
            binarized = data_utils.load_indexed_dataset(
                f"{args.data}/bin/{split}.{source}-{target}.{lang}", dictionary)
            for index, line in enumerate(raw(split, lang)[:len(binarized)]):
                total += 1
                same += tokenizer(line)["input_ids"] == binarized[index].tolist()
    print(f"tokenizer: {same} of {total} lines give bin/'s ids ({time.time() - began:.0f} s)")

    def fairseq_sources(lines):
        rows = [torch.tensor(tokenizer(line)["input_ids"]) for line in lines]
        return {"src_tokens": data_utils.collate_tokens(rows, dictionary.pad(), left_pad=True),
                "src_lengths": torch.tensor([len(row) for row in rows])}

    began, worst, equal, positions = time.time(), 0.0, 0, 0
    sources, targets = raw("test", source), raw("test", target)
    count = len(data_utils.load_indexed_dataset(
        f"{args.data}/bin/test.{source}-{target}.{source}", dictionary))
    for start, chunk in batches(sources[:count]):
        gold = [torch.tensor(tokenizer(line)["input_ids"])
                for line in targets[start:start + len(chunk)]]
        net_input = fairseq_sources(chunk)
        net_input["prev_output_tokens"] = data_utils.collate_tokens(
            gold, dictionary.pad(), left_pad=False, move_eos_to_beginning=True)
        with torch.no_grad():
            ours = model(**net_input)[0]
            theirs = hf(**tokenizer(chunk, return_tensors="pt", padding=True),
                        decoder_input_ids=net_input["prev_output_tokens"]).logits
        for row, tokens in enumerate(gold):
            n = len(tokens)
            worst = max(worst, (ours[row, :n] - theirs[row, :n]).abs().max().item())
            equal += int((ours[row, :n].argmax(-1) == theirs[row, :n].argmax(-1)).sum())
            positions += n
    print(f"logits: {count} test pairs, {positions} target positions, max abs difference "
          f"{worst:.1e}, argmax equal at {equal} ({time.time() - began:.0f} s)")

    generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_a=0, max_len_b=200,
                                  min_len=1, len_penalty=1.0)
    identical, differ, at_limit, seconds = 0, 0, 0, [0.0, 0.0]
    for _, chunk in batches(sources[:min(args.sentences, count)]):
        with torch.no_grad():
            began = time.time()
            found = generator.generate([model], {"net_input": fairseq_sources(chunk)})
            seconds[0] += time.time() - began
            began = time.time()
            generated = hf.generate(**tokenizer(chunk, return_tensors="pt", padding=True))
            seconds[1] += time.time() - began
        for row, hypotheses in enumerate(found):
            ours, theirs = hypotheses[0]["tokens"], generated[row, 1:]
            theirs = theirs[theirs != dictionary.pad()]
            if torch.equal(ours, theirs):
                identical += 1
            else:
                differ += 1
                at_limit += int(max(len(ours), len(theirs)) > 200)
    print(f"beam 4: {identical} of {identical + differ} identical; of the {differ} others "
          f"{at_limit} ran to the 200-token limit (fairseq {seconds[0]:.0f} s, transformers "
          f"{seconds[1]:.0f} s)")


if __name__ == "__main__":
    main()
