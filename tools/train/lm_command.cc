#include <cstdio>
#include <string>

#include "tools/train/commands.h"
#include "train/lm_run.h"

namespace helpline::train::cli {

void AddLmCommand(CLI::App& app) {
  auto o = std::make_shared<LmRunOptions>();
  CLI::App* cmd = app.add_subcommand("lm", "train a GPT-2-architecture language model (libtorch)");
  cmd->add_option("--train", o->train_file, "training text (examples separated by <|endoftext|>)")->required();
  cmd->add_option("--dev", o->dev_file, "dev text, same format")->required();
  cmd->add_option("--tokenizer", o->tokenizer_dir, "folder with vocab.json + merges.txt")->required();
  cmd->add_option("--out", o->out_dir, "output folder (HF layout, checkpoint, report)")->required();
  LmTrainOptions& t = o->train;
  cmd->add_option("--layers", t.shape.n_layer)->capture_default_str();
  cmd->add_option("--embd", t.shape.n_embd)->capture_default_str();
  cmd->add_option("--heads", t.shape.n_head)->capture_default_str();
  cmd->add_option("--positions", t.shape.n_positions)->capture_default_str();
  cmd->add_flag("--round-vocab", o->round_vocab, "pad the embedding rows to a multiple of 64");
  cmd->add_option("--steps", t.steps)->capture_default_str();
  cmd->add_option("--batch-tokens", t.batch_tokens, "tokens per optimizer step")->capture_default_str();
  cmd->add_option("--micro-rows", t.micro_rows, "rows per forward/backward pass")->capture_default_str();
  cmd->add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", t.warmup, "linear warmup steps")->capture_default_str();
  cmd->add_option("--min-lr-ratio", t.min_lr_ratio, "cosine floor / peak")->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "AdamW decay of the matrices")->capture_default_str();
  cmd->add_option("--clip", t.clip, "gradient norm clip (0: off)")->capture_default_str();
  cmd->add_option("--seed", t.seed)->capture_default_str();
  cmd->add_option("--threads", t.threads, "intra-op threads (0: libtorch default)")->capture_default_str();
  cmd->add_option("--eval-every", o->eval_every, "steps between dev evaluations (0: at the end)")
      ->capture_default_str();
  cmd->add_option("--eval-tokens", o->eval_tokens, "dev tokens per evaluation (0: all)")->capture_default_str();
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "steps between checkpoints (0: at the end)")
      ->capture_default_str();
  cmd->add_option("--log-every", o->log_every, "steps between progress lines")->capture_default_str();
  cmd->add_option("--resume", o->resume_dir, "folder with checkpoint.pt to continue from");
  cmd->add_option("--init-from", o->init_dir,
                  "folder with another run's checkpoint.pt: start from its weights with a new schedule");
  cmd->add_option("--context-weight", t.context_weight,
                  "loss weight of the tokens before each example's reply (1: all text alike, 0: replies only)")
      ->capture_default_str();
  cmd->add_flag("--f16", o->f16, "write model.safetensors in F16");
  cmd->final_callback([o] {
    if (absl::Status s = RunLmTraining(*o); !s.ok()) {
      std::fprintf(stderr, "helpline-train lm: %s\n", std::string(s.message()).c_str());
      throw CLI::RuntimeError(absl::IsInvalidArgument(s) || absl::IsNotFound(s) ? 2 : 1);
    }
    std::fprintf(stderr, "helpline-train lm: done -> %s (report.txt, report.json, loss.png)\n", o->out_dir.c_str());
  });
}

}  // namespace helpline::train::cli
