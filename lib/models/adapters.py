"""The lab's one PEFT builder: LoRA (optionally on a k-bit quantised model, i.e. QLoRA) and prompt tuning."""
from lib.core.errors import LabError

METHODS = ("lora", "prompt")


def create_peft_model(model, method: str = "lora", *, r: int = 16, alpha: int = 32, dropout: float = 0.05,
                      target_modules="all-linear", task_type=None, virtual_tokens: int = 20,
                      quantized: bool = False, gradient_checkpointing: bool = False):
    """`model` wrapped by peft.
    method 'lora': adapters of rank r (scale alpha / r, dropout) on target_modules ('all-linear' or a list of module
    names); 'prompt': prompt tuning with `virtual_tokens` soft-prompt vectors (r, alpha, dropout, target_modules unused).
    task_type: a peft TaskType or its name (None: a bare model, no task head handling); for SEQ_CLS / QUESTION_ANS
    peft keeps the task head trainable.
    quantized: the model was loaded in 4/8 bit, so it is first prepared for k-bit training (norms in fp32, input
    gradients on; gradient checkpointing as asked). Otherwise gradient_checkpointing turns checkpointing on directly."""
    from peft import (
        LoraConfig,
        PromptTuningConfig,
        get_peft_model,
        prepare_model_for_kbit_training,
    )
    if method not in METHODS:
        raise LabError(f"PEFT method {method!r}: expected {' | '.join(METHODS)}")
    reentrant = {"use_reentrant": False}  # DDP (several processes) rejects reentrant checkpointing of unused weights
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=reentrant)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=reentrant)
        model.enable_input_require_grads()
    if method == "lora":
        targets = target_modules if isinstance(target_modules, str) else list(target_modules)
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task_type)
    else:
        cfg = PromptTuningConfig(task_type=task_type, num_virtual_tokens=virtual_tokens)
    return get_peft_model(model, cfg)
