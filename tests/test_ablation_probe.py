"""bench.results.ablation's similarity probe (the distributions drawn in docs/results.md): each sentence's positive and
hardest in-batch negative cosine, computed without touching the run's random state."""

import torch

from bench.results.ablation import HISTOGRAM_BINS, cosine_histogram, probe_similarities
from hncse.modeling import SentenceEncoder


def test_the_probe_matches_a_naive_computation_and_leaves_the_random_state(tiny_model_dir, corpus_file):
    sentences = corpus_file.read_text(encoding="utf-8").splitlines()[:10]
    torch.manual_seed(1)
    model = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls", mlp_only_train=True)
    for module in model.modules():  # no dropout: the two views are equal, so each positive is exactly 1
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.eval()
    state = torch.get_rng_state()
    probe = probe_similarities(model, sentences, batch_size=4, max_seq_length=16)  # batches of 4, 4, 2
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    model.train()

    hardest = []
    with torch.no_grad():
        for start in range(0, 10, 4):
            batch = model.tokenizer(sentences[start : start + 4], truncation=True, max_length=16, padding=True,
                                    return_tensors="pt")  # fmt: skip
            z = torch.nn.functional.normalize(model(**batch), dim=-1)  # training mode: through the MLP head
            for i in range(len(z)):
                hardest.append(max(float(z[i] @ z[j]) for j in range(len(z)) if j != i))
    assert abs(probe["mean_positive"] - 1.0) < 1e-4
    assert abs(probe["mean_hardest_negative"] - sum(hardest) / 10) < 1e-4
    assert probe["hardest_negative_above_positive"] == 0.0
    assert len(probe["positive"]) == HISTOGRAM_BINS and sum(probe["positive"]) == sum(probe["hardest_negative"]) == 10
    assert probe["positive"][-1] == 10  # cosine 1 falls in the last bin


def test_cosines_a_rounding_error_outside_minus_one_to_one_are_counted_in_the_edge_bins():
    one_up, one_down = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)), torch.tensor(-1.0000001)
    counts = cosine_histogram(torch.stack([one_up, torch.tensor(1.0), torch.tensor(0.0), one_down]))
    assert sum(counts) == 4 and counts[-1] == 2 and counts[0] == 1 and len(counts) == HISTOGRAM_BINS
