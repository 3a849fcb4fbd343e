"""MLLOG keys the Transformer logs that mlperf_logging's constants lack: the v0.5 reference's
transformer tags (mlperf_compliance/mlperf_log.py, spelled as its logs spell them) and our two
BLEU companions. The keys every benchmark shares live in references/common/mllogging.py."""


class TransformerKeys:
    MODEL_HP_VOCAB_SIZE = "model_hp_vocab_size"
    MODEL_HP_NUM_HIDDEN_LAYERS = "model_hp_hidden_layers"
    MODEL_HP_EMBEDDING_SHARED_WEIGHTS = "model_hp_embedding_shared_weights"
    MODEL_HP_ATTENTION_DROPOUT = "model_hp_attention_dropout"
    MODEL_HP_RELU_DROPOUT = "model_hp_relu_dropout"
    MODEL_HP_LAYER_POSTPROCESS_DROPOUT = "model_hp_layer_postprocess_dropout"
    MODEL_HP_SEQ_BEAM_SEARCH = "model_hp_sequence_beam_search"
    # eval_accuracy is the reference's uncased BLEU (the target's metric); these go beside it.
    BLEU_CASED = "mlperf_edge_bleu_cased"          # the reference's cased score (printed by it)
    SACREBLEU = "mlperf_edge_sacrebleu"            # sacreBLEU's score; metadata: its signature
