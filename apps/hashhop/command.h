// How subcommands plug into the one `hashhop` binary: each file registers its options on a CLI11
// subcommand and returns the function that runs it. See main.cpp for the list.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace hashhop::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_gen_command(CLI::App& root);
Command add_score_command(CLI::App& root);
Command add_demo_command(CLI::App& root);
Command add_solve_command(CLI::App& root);
Command add_attn_check_command(CLI::App& root);
Command add_attn_bench_command(CLI::App& root);
Command add_train_command(CLI::App& root);
Command add_eval_command(CLI::App& root);
Command add_answer_command(CLI::App& root);
Command add_engine_bench_command(CLI::App& root);
Command add_serve_command(CLI::App& root);
Command add_signature_recall_command(CLI::App& root);
Command add_hop_probe_command(CLI::App& root);
Command add_margin_probe_command(CLI::App& root);
Command add_compact_command(CLI::App& root);
Command add_sweep_command(CLI::App& root);  // issue 13: sweeps and plots
Command add_plot_command(CLI::App& root);

}  // namespace hashhop::cli
