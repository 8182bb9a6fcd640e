"""The pre-training job behind recipes/pretrain_mlm.py and recipes/pretrain_clm.py (see run.py)."""
