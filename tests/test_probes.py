"""The probe set and the demos on text without spaces (Chinese, Japanese) and from the run's own data."""

import itertools
import random
import re

import pytest

from hfmicro.bpe import fertility, train_bpe
from hfmicro.training.probes import build_probe_set, demo_prompts, demo_sentences

SUBJECTS = ["我们", "他们", "学生们", "老师", "这位作家", "那个孩子", "工程师", "农民"]
VERBS = ["喜欢", "研究", "讨论", "记得", "描写", "相信", "发现", "改变"]
OBJECTS = ["中国的历史", "古代的诗歌", "城市的生活", "山里的河流", "新的科学", "传统的音乐", "春天的天气", "远方的朋友"]
TAILS = ["，而且每天都写下来。", "，所以大家都很高兴。", "，但是时间不够。", "，因为这很重要！"]


def chinese_documents(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    sentences = ["".join(parts) for parts in itertools.product(SUBJECTS, VERBS, OBJECTS, TAILS)]
    return ["".join(rng.sample(sentences, 4)) for _ in range(n)]  # four sentences, no spaces anywhere


@pytest.fixture(scope="module")
def chinese_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("zh") / "tok"
    with pytest.warns(UserWarning):  # a vocabulary below the supported range
        train_bpe(chinese_documents(), vocab_size=600, model_type="bert", output_dir=str(out))
    return AutoTokenizer.from_pretrained(out)


def test_probe_set_on_chinese_masks_whole_tokens_of_real_sentences(chinese_tokenizer):
    train, validation = chinese_documents(400, 0), chinese_documents(60, 1)
    items, counts = build_probe_set(chinese_tokenizer, train, validation, size=50, exclude_top=20)
    assert len(items) == 50  # before: sentences were split on .!? and words on spaces: no item at all
    mask = chinese_tokenizer.mask_token
    sentences = {s for doc in validation for s in doc.replace("。", "。\n").replace("！", "！\n").splitlines()}
    for item in items:
        assert item.text.count(mask) == 1 and " " not in item.text
        restored = item.text.replace(mask, item.answer)
        assert restored in sentences  # one real sentence, one unit masked
        assert chinese_tokenizer.convert_tokens_to_ids(chinese_tokenizer.tokenize(item.answer)) == [item.answer_id]
        assert all("\u4e00" <= c <= "\u9fff" for c in item.answer)  # a Chinese unit, never punctuation


def test_demos_come_from_the_runs_own_text(chinese_tokenizer, bert_tokenizer):
    validation = chinese_documents(10, 2)
    sentences = demo_sentences(chinese_tokenizer, validation, 3)
    assert len(sentences) == 3 and all(s.count(chinese_tokenizer.mask_token) == 1 for s in sentences)
    for sentence in sentences:  # a sentence of the validation text with one unit masked
        left, right = sentence.split(chinese_tokenizer.mask_token)
        assert any(re.search(re.escape(left) + ".+?" + re.escape(right), d) for d in validation)
    prompts = demo_prompts(validation, 2)
    assert len(prompts) == 2 and all(8 <= len(p) <= 12 and any(p in d for d in validation) for p in prompts)
    english = ["The module provides access to the file system and to every process of the machine. It is old."]
    (sentence,) = demo_sentences(bert_tokenizer, english, 1)
    assert sentence.count("[MASK]") == 1 and sentence.startswith("The ")
    assert demo_prompts(english, 1) == ["The module provides access"]


def test_fertility_reports_tokens_per_character_and_no_words_without_spaces(chinese_tokenizer):
    report = fertility(chinese_tokenizer, chinese_documents(20, 3))
    assert report["tokens_per_word"] is None and 0 < report["tokens_per_char"] < 1


def test_demos_run_through_the_pipelines_and_leave_trainings_random_state_alone(bert_tokenizer, gpt_tokenizer):
    import torch

    from hfmicro.pipelines import fill_mask
    from hfmicro.models import MicroBertConfig, MicroBertForMaskedLM, MicroGPTConfig, MicroGPTForCausalLM
    from hfmicro.training.probes import fill_mask_demo, generation_demo
    from transformers import pipeline

    torch.manual_seed(0)
    bert = MicroBertForMaskedLM(MicroBertConfig(vocab_size=len(bert_tokenizer), hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=64,
                                                pad_token_id=bert_tokenizer.pad_token_id)).eval()
    sentence = "The function returns a [MASK] of the values."
    demo = fill_mask_demo(bert, bert_tokenizer, [sentence])
    expected = fill_mask(pipeline("fill-mask", model=bert, tokenizer=bert_tokenizer), sentence)[0]
    assert demo == f"  {sentence}  ->  " + ", ".join(f"{g['token']!r} {g['probability']:.3f}" for g in expected)

    gpt = MicroGPTForCausalLM(MicroGPTConfig(vocab_size=len(gpt_tokenizer), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                             pad_token_id=gpt_tokenizer.pad_token_id,
                                             bos_token_id=gpt_tokenizer.bos_token_id,
                                             eos_token_id=gpt_tokenizer.eos_token_id)).eval()
    before = torch.random.get_rng_state()
    first = generation_demo(gpt, gpt_tokenizer, ["The module provides"], max_new_tokens=12)
    assert torch.equal(torch.random.get_rng_state(), before)  # the run's masking and dropout stream is untouched
    assert generation_demo(gpt, gpt_tokenizer, ["The module provides"], max_new_tokens=12) == first  # comparable
    assert first.startswith("  'The module provides") and "repeated 4-grams" in first and "distinct-2" in first
