"""BibTeX of the methods this recipe implements (model cards and the loss modules' `citation`)."""

HNCSE_BIBTEX = """@article{liu2024hncse,
  title = {Advancing Sentence Embeddings via Hybrid Contrastive Learning with Hard Negatives},
  author = {Liu, Wenxiao and Yang, Zihong and Li, Chaozhuo and Hong, Zijin and Ma, Jianfeng and Liu, Zhiquan and
            Zhang, Litian and Huang, Feiran},
  journal = {arXiv preprint arXiv:2411.12156},
  year = {2024}
}"""

SIMCSE_BIBTEX = """@inproceedings{gao2021simcse,
  title = {{SimCSE}: Simple Contrastive Learning of Sentence Embeddings},
  author = {Gao, Tianyu and Yao, Xingcheng and Chen, Danqi},
  booktitle = {Empirical Methods in Natural Language Processing (EMNLP)},
  year = {2021}
}"""
