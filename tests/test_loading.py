"""Checkpoints load everywhere: through the Auto classes and pipelines with hfmicro, and with
trust_remote_code=True in a process where hfmicro cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from transformers import pipeline

from helpers import tiny_model


def save_checkpoints(tmp_path, bert_tokenizer, gpt_tokenizer):
    bert = tiny_model("microbert", pad_token_id=bert_tokenizer.pad_token_id)
    gpt = tiny_model("microgpt", bos_token_id=gpt_tokenizer.bos_token_id, eos_token_id=gpt_tokenizer.eos_token_id,
                     pad_token_id=gpt_tokenizer.pad_token_id)
    bert.save_pretrained(tmp_path / "bert")
    bert_tokenizer.save_pretrained(tmp_path / "bert")
    gpt.save_pretrained(tmp_path / "gpt")
    gpt_tokenizer.save_pretrained(tmp_path / "gpt")
    return bert, gpt


def test_pipelines_with_hfmicro(tmp_path, bert_tokenizer, gpt_tokenizer):
    bert, gpt = save_checkpoints(tmp_path, bert_tokenizer, gpt_tokenizer)
    fill = pipeline("fill-mask", model=str(tmp_path / "bert"), top_k=3)
    predictions = fill("The value of the [MASK] is returned.")
    assert len(predictions) == 3
    # the pipeline's scores are the model's softmax at the mask position
    enc = bert_tokenizer("The value of the [MASK] is returned.", return_tensors="pt")
    with torch.no_grad():
        logits = bert(**enc).logits[0, enc.input_ids[0].tolist().index(bert_tokenizer.mask_token_id)]
    top = logits.softmax(-1).topk(3)
    assert [p["token"] for p in predictions] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([p["score"] for p in predictions]), top.values, atol=1e-5, rtol=0)

    generate = pipeline("text-generation", model=str(tmp_path / "gpt"))
    text = generate("The module", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    prompt_ids = gpt_tokenizer("The module", return_tensors="pt").input_ids
    expected = gpt.generate(prompt_ids, max_new_tokens=8, do_sample=False, pad_token_id=gpt_tokenizer.pad_token_id)
    assert text == gpt_tokenizer.decode(expected[0], skip_special_tokens=True)


def test_loads_without_hfmicro_via_trust_remote_code(tmp_path, bert_tokenizer, gpt_tokenizer):
    bert, gpt = save_checkpoints(tmp_path, bert_tokenizer, gpt_tokenizer)
    x = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        expected = {"bert": bert(x).logits[0, :, :5].tolist(), "gpt": gpt(x).logits[0, :, :5].tolist()}
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["hfmicro"] = None  # as on a machine without hfmicro installed
        try:
            import hfmicro
        except ImportError:
            pass
        else:
            raise SystemExit("hfmicro was importable")
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, pipeline

        x = torch.tensor({x.tolist()})
        bert = AutoModelForMaskedLM.from_pretrained("bert", trust_remote_code=True).eval()
        gpt = AutoModelForCausalLM.from_pretrained("gpt", trust_remote_code=True).eval()
        assert "hfmicro" not in type(bert).__module__, type(bert).__module__
        with torch.no_grad():
            logits = {{"bert": bert(x).logits[0, :, :5].tolist(), "gpt": gpt(x).logits[0, :, :5].tolist()}}
        fill = pipeline("fill-mask", model="bert", trust_remote_code=True)("The [MASK] is returned.")
        text = pipeline("text-generation", model="gpt", trust_remote_code=True)(
            "The module", max_new_tokens=5, do_sample=False)[0]["generated_text"]
        print(json.dumps({{"logits": logits, "fill": fill, "text": text, "classes": [type(bert).__name__, type(gpt).__name__]}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    # cwd is the checkpoint folder's parent, so neither the repository nor the tests are on sys.path
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["classes"] == ["MicroBertForMaskedLM", "MicroGPTForCausalLM"]
    for name in ("bert", "gpt"):
        torch.testing.assert_close(torch.tensor(out["logits"][name]), torch.tensor(expected[name]), atol=1e-5, rtol=0)
    assert len(out["fill"]) == 5 and all("[MASK]" not in p["sequence"] for p in out["fill"])
    assert out["text"].startswith("The module") and len(out["text"]) > len("The module")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_microbert.MicroBertForMaskedLM"
    config = json.loads((tmp_path / "gpt" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_microgpt.MicroGPTForCausalLM"
