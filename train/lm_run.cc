#include "train/lm_run.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "train/dialogue_text.h"

namespace helpline::train {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::Status WriteFileAtomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return absl::InternalError(absl::StrCat(tmp.string(), ": write failed"));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path.string(), ": rename failed: ", ec.message()));
  return absl::OkStatus();
}

std::string Duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

struct History {
  json log = json::array();    // {step, loss, lr, grad_norm, tokens_per_second}
  json evals = json::array();  // {step, dev_loss, dev_perplexity}
  double seconds = 0;          // training time before this run (resume)

  json ToJson() const { return {{"log", log}, {"evals", evals}, {"seconds", seconds}}; }
  void DropAfter(int64_t step) {
    auto keep = [step](const json& a) {
      json out = json::array();
      for (const json& e : a) {
        if (e.at("step").get<int64_t>() <= step) out.push_back(e);
      }
      return out;
    };
    log = keep(log);
    evals = keep(evals);
  }
};

absl::Status WriteReport(const LmRunOptions& o, const LmTrainer& trainer, const History& h,
                         double seconds, int64_t tokens_per_step) {
  const fs::path out(o.out_dir);
  const LmShape& s = trainer.options().shape;
  json report = {
      {"shape", {{"vocab_size", s.vocab_size}, {"n_positions", s.n_positions}, {"n_embd", s.n_embd},
                 {"n_layer", s.n_layer}, {"n_head", s.n_head}}},
      {"parameters", trainer.parameter_count()},
      {"steps", trainer.step()},
      {"tokens_per_step", tokens_per_step},
      {"tokens", trainer.step() * tokens_per_step},
      {"seconds", seconds},
      {"tokens_per_second", seconds > 0 ? trainer.step() * tokens_per_step / seconds : 0.0},
      {"options",
       {{"lr", o.train.lr}, {"warmup", o.train.warmup}, {"min_lr_ratio", o.train.min_lr_ratio},
        {"weight_decay", o.train.weight_decay}, {"clip", o.train.clip}, {"seed", o.train.seed},
        {"batch_tokens", o.train.batch_tokens}, {"threads", o.train.threads}, {"f16", o.f16},
        {"context_weight", o.train.context_weight}, {"init_from", o.init_dir},
        {"train_file", o.train_file}, {"dev_file", o.dev_file}}},
      {"evals", h.evals},
      {"log", h.log}};
  if (!h.log.empty()) report["final_train_loss"] = h.log.back().at("loss");
  if (!h.evals.empty()) {
    report["dev_loss"] = h.evals.back().at("dev_loss");
    report["dev_perplexity"] = h.evals.back().at("dev_perplexity");
  }
  if (absl::Status st = WriteFileAtomic(out / "report.json", report.dump(2) + "\n"); !st.ok()) return st;

  std::string txt = absl::StrFormat(
      "model       %d layers x %d, %d heads, %d positions, vocab %d (%d parameters)\n"
      "steps       %d x %d tokens = %d tokens in %s (%.0f tokens/s)\n",
      s.n_layer, s.n_embd, s.n_head, s.n_positions, s.vocab_size, trainer.parameter_count(),
      trainer.step(), tokens_per_step, trainer.step() * tokens_per_step, Duration(seconds),
      seconds > 0 ? trainer.step() * tokens_per_step / seconds : 0.0);
  absl::StrAppend(&txt, o.train.context_weight == 1.0
                            ? "\n  dev loss over all tokens\n"
                            : absl::StrCat("\n  dev loss weighted as trained (reply tokens 1, the rest ",
                                           o.train.context_weight, ")\n"));
  if (!o.init_dir.empty()) absl::StrAppend(&txt, "  started from the weights of ", o.init_dir, "\n");
  absl::StrAppend(&txt, "\n  step  dev loss  dev ppl\n");
  for (const json& e : h.evals) {
    absl::StrAppend(&txt, absl::StrFormat("%6d  %8.4f  %7.2f\n", e.at("step").get<int64_t>(),
                                          e.at("dev_loss").get<double>(), e.at("dev_perplexity").get<double>()));
  }
  std::string tsv = "step\ttrain_loss\tlr\n";
  for (const json& e : h.log) {
    absl::StrAppend(&tsv, e.at("step").get<int64_t>(), "\t", e.at("loss").get<double>(), "\t",
                    e.at("lr").get<double>(), "\n");
  }
  std::string dev_tsv = "step\tdev_loss\n";
  for (const json& e : h.evals) {
    absl::StrAppend(&dev_tsv, e.at("step").get<int64_t>(), "\t", e.at("dev_loss").get<double>(), "\n");
  }
  if (absl::Status st = WriteFileAtomic(out / "loss.tsv", tsv); !st.ok()) return st;
  if (absl::Status st = WriteFileAtomic(out / "dev_loss.tsv", dev_tsv); !st.ok()) return st;
  // The loss curve as a PNG with gnuplot, when it is installed.
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const std::string script = absl::StrCat(
        "set terminal png size 900,500\nset output '", (out / "loss.png").string(), "'\n",
        "set xlabel 'step'\nset ylabel 'loss (nats/token)'\nset grid\nset key top right\n",
        "plot '", (out / "loss.tsv").string(), "' using 1:2 skip 1 with lines title 'train', '",
        (out / "dev_loss.tsv").string(), "' using 1:2 skip 1 with linespoints title 'dev'\n");
    if (absl::Status st = WriteFileAtomic(out / "loss.gnuplot", script); !st.ok()) return st;
    const std::string cmd = absl::StrCat("gnuplot '", (out / "loss.gnuplot").string(), "' 2>/dev/null");
    if (std::system(cmd.c_str()) == 0) {
      absl::StrAppend(&txt, "\nloss curve: ", (out / "loss.png").string(), "\n");
    }
  }
  return WriteFileAtomic(out / "report.txt", txt);
}

}  // namespace

absl::StatusOr<TokenStream> TokenizeTrainingText(const std::string& path, const lm::BpeTokenizer& tokenizer) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  const std::optional<int32_t> eos = tokenizer.TokenId(kEndOfText);
  if (!eos) return absl::InvalidArgumentError("the tokenizer has no <|endoftext|> token");
  TokenStream out;
  absl::string_view rest(*text);
  int64_t examples = 0;
  const std::string line_cue = absl::StrCat("\n", kReplyCue);
  while (!rest.empty()) {
    const size_t end = rest.find(kEndOfText);
    absl::string_view example = rest.substr(0, end);
    if (!example.empty() && !std::all_of(example.begin(), example.end(),
                                         [](char c) { return c == '\n' || c == ' '; })) {
      // The prompt ends after the last reply cue at a line start; the rest is the reply.
      size_t prompt_end = 0;
      if (const size_t cue = example.rfind(line_cue); cue != absl::string_view::npos) {
        prompt_end = cue + line_cue.size();
      } else if (absl::StartsWith(example, kReplyCue)) {
        prompt_end = kReplyCue.size();
      }
      tokenizer.EncodeTo(example.substr(0, prompt_end), out.ids);
      out.reply.resize(out.ids.size(), 0);
      tokenizer.EncodeTo(example.substr(prompt_end), out.ids);
      out.ids.push_back(*eos);
      // Without a cue nothing of the example is a reply.
      out.reply.resize(out.ids.size(), prompt_end > 0 ? 1 : 0);
      ++examples;
    }
    if (end == absl::string_view::npos) break;
    rest.remove_prefix(end + kEndOfText.size());
    if (!rest.empty() && rest.front() == '\n') rest.remove_prefix(1);
  }
  if (examples == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": empty (no example)"));
  return out;
}

absl::Status RunLmTraining(const LmRunOptions& options) {
  LmRunOptions o = options;
  if (o.out_dir.empty()) return absl::InvalidArgumentError("--out: missing");
  if (!o.init_dir.empty() && !o.resume_dir.empty()) {
    return absl::InvalidArgumentError("--init-from and --resume: give one (--resume continues a run, "
                                      "--init-from starts a new one from another run's weights)");
  }
  absl::StatusOr<std::unique_ptr<lm::BpeTokenizer>> tokenizer = lm::BpeTokenizer::Load(o.tokenizer_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  const std::optional<int32_t> eos = (*tokenizer)->TokenId(kEndOfText);
  if (!eos) return absl::InvalidArgumentError(absl::StrCat(o.tokenizer_dir, ": no <|endoftext|> token"));
  o.train.eos_id = *eos;
  int vocab = (*tokenizer)->vocab_size();
  if (o.round_vocab) vocab = (vocab + 63) / 64 * 64;
  o.train.shape.vocab_size = vocab;
  if (o.train.shape.n_embd % std::max(1, o.train.shape.n_head) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--embd ", o.train.shape.n_embd,
                                                   " is not divisible by --heads ", o.train.shape.n_head));
  }
  // A checkpoint of another shape or seed is refused before any long work.
  History history;
  if (!o.resume_dir.empty()) {
    absl::StatusOr<LmTrainOptions> saved = ReadCheckpointOptions(o.resume_dir);
    if (!saved.ok()) return saved.status();
    if (!(saved->shape == o.train.shape)) {
      const LmShape& a = saved->shape;
      const LmShape& b = o.train.shape;
      return absl::InvalidArgumentError(absl::StrFormat(
          "--resume %s: the checkpoint is a %d x %d model (%d heads, %d positions, vocab %d); this "
          "run asks for %d x %d (%d heads, %d positions, vocab %d)",
          o.resume_dir, a.n_layer, a.n_embd, a.n_head, a.n_positions, a.vocab_size, b.n_layer, b.n_embd,
          b.n_head, b.n_positions, b.vocab_size));
    }
    if (saved->seed != o.train.seed) {
      return absl::InvalidArgumentError(absl::StrCat("--resume ", o.resume_dir, ": written with --seed ",
                                                     saved->seed, ", this run has --seed ", o.train.seed));
    }
    if (saved->steps >= o.train.steps) {
      return absl::InvalidArgumentError(absl::StrCat("--resume ", o.resume_dir, ": already ", saved->steps,
                                                     " steps done, --steps is ", o.train.steps));
    }
    absl::StatusOr<std::string> h = ReadWholeFile((fs::path(o.resume_dir) / "history.json").string());
    if (h.ok()) {
      const json j = json::parse(*h, nullptr, false);
      if (j.is_object()) {
        history.log = j.value("log", json::array());
        history.evals = j.value("evals", json::array());
        history.seconds = j.value("seconds", 0.0);
        history.DropAfter(saved->steps);
      }
    }
  }
  if (!o.init_dir.empty()) {
    absl::StatusOr<LmTrainOptions> saved = ReadCheckpointOptions(o.init_dir);
    if (!saved.ok()) return saved.status();
    if (!(saved->shape == o.train.shape)) {
      const LmShape& a = saved->shape;
      return absl::InvalidArgumentError(absl::StrFormat(
          "--init-from %s: the checkpoint is a %d x %d model (%d heads, %d positions, vocab %d), not the "
          "shape of this run", o.init_dir, a.n_layer, a.n_embd, a.n_head, a.n_positions, a.vocab_size));
    }
  }
  absl::StatusOr<TokenStream> train_ids = TokenizeTrainingText(o.train_file, **tokenizer);
  if (!train_ids.ok()) return train_ids.status();
  absl::StatusOr<TokenStream> dev_ids = TokenizeTrainingText(o.dev_file, **tokenizer);
  if (!dev_ids.ok()) return dev_ids.status();
  if (static_cast<int64_t>(dev_ids->size()) < o.train.shape.n_positions + 1) {
    return absl::InvalidArgumentError(absl::StrCat(o.dev_file, ": ", dev_ids->size(),
                                                   " tokens, fewer than one window of ",
                                                   o.train.shape.n_positions + 1));
  }
  const size_t train_tokens = train_ids->size(), dev_tokens = dev_ids->size();
  absl::StatusOr<std::unique_ptr<LmTrainer>> created =
      LmTrainer::Create(o.train, std::move(*train_ids), std::move(*dev_ids));
  if (!created.ok()) return created.status();
  LmTrainer& trainer = **created;
  if (!o.resume_dir.empty()) {
    if (absl::Status st = trainer.LoadCheckpoint(o.resume_dir); !st.ok()) return st;
  }
  if (!o.init_dir.empty()) {
    if (absl::Status st = trainer.InitFromCheckpoint(o.init_dir); !st.ok()) return st;
  }
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(o.out_dir, ": cannot create: ", ec.message()));

  const int64_t T = o.train.shape.n_positions;
  const int64_t tokens_per_step = std::max<int64_t>(1, o.train.batch_tokens / T) * T;
  std::fprintf(stderr,
               "helpline-train lm: %d layers x %d (%d heads), %d positions, vocab %d: %lld parameters; "
               "train %zu tokens, dev %zu tokens; %lld tokens/step (%.2f epochs in %lld steps)%s\n",
               o.train.shape.n_layer, o.train.shape.n_embd, o.train.shape.n_head, o.train.shape.n_positions,
               o.train.shape.vocab_size, static_cast<long long>(trainer.parameter_count()), train_tokens,
               dev_tokens, static_cast<long long>(tokens_per_step),
               static_cast<double>(tokens_per_step) * o.train.steps / train_tokens,
               static_cast<long long>(o.train.steps),
               o.resume_dir.empty() ? "" : absl::StrCat("; resumed at step ", trainer.step()).c_str());
  if (o.train.context_weight != 1.0 || !o.init_dir.empty()) {
    std::fprintf(stderr, "  loss weight of reply tokens 1, of the rest %g%s\n", o.train.context_weight,
                 o.init_dir.empty() ? "" : absl::StrCat("; started from the weights of ", o.init_dir).c_str());
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last = start;
  const int64_t first_step = trainer.step();
  double window_loss = 0;
  int64_t window_steps = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto evaluate = [&] {
    const double loss = trainer.EvalLoss(o.eval_tokens);
    history.evals.push_back({{"step", trainer.step()}, {"dev_loss", loss}, {"dev_perplexity", std::exp(loss)}});
    std::fprintf(stderr, "step %lld: dev loss %.4f, dev perplexity %.2f\n",
                 static_cast<long long>(trainer.step()), loss, std::exp(loss));
  };
  auto checkpoint = [&]() -> absl::Status {
    if (absl::Status st = trainer.SaveCheckpoint(o.out_dir); !st.ok()) return st;
    json h = history.ToJson();
    h["seconds"] = history.seconds + elapsed();
    return WriteFileAtomic(fs::path(o.out_dir) / "history.json", h.dump() + "\n");
  };
  while (trainer.step() < o.train.steps) {
    const StepStats st = trainer.Step();
    window_loss += st.loss;
    ++window_steps;
    if (st.step % std::max<int64_t>(1, o.log_every) == 0 || st.step == o.train.steps) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - last).count();
      last = now;
      const double tps = dt > 0 ? window_steps * tokens_per_step / dt : 0;
      const double per_step = elapsed() / static_cast<double>(st.step - first_step);
      history.log.push_back({{"step", st.step}, {"loss", window_loss / window_steps}, {"lr", st.lr},
                             {"grad_norm", st.grad_norm}, {"tokens_per_second", tps}});
      std::fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.2e  |g| %.2f  %.0f tok/s  %s elapsed  ETA %s\n",
                   static_cast<long long>(st.step), static_cast<long long>(o.train.steps),
                   window_loss / window_steps, st.lr, st.grad_norm, tps, Duration(elapsed()).c_str(),
                   Duration(per_step * (o.train.steps - st.step)).c_str());
      window_loss = 0;
      window_steps = 0;
    }
    if (o.eval_every > 0 && st.step % o.eval_every == 0 && st.step < o.train.steps) evaluate();
    if (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0 && st.step < o.train.steps) {
      if (absl::Status s = checkpoint(); !s.ok()) return s;
    }
  }
  evaluate();
  const double seconds = history.seconds + elapsed();
  if (absl::Status s = checkpoint(); !s.ok()) return s;
  if (absl::Status s = trainer.ExportHf(o.out_dir, o.f16); !s.ok()) return s;
  for (const char* name : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path from = fs::path(o.tokenizer_dir) / name;
    if (!fs::exists(from)) continue;
    if (fs::equivalent(fs::path(o.tokenizer_dir), fs::path(o.out_dir), ec)) break;
    fs::copy_file(from, fs::path(o.out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat(from.string(), ": copy failed: ", ec.message()));
  }
  return WriteReport(o, trainer, history, seconds, tokens_per_step);
}

}  // namespace helpline::train
