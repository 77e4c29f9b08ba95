// `hashhop serve --model DIR`: our model behind an OpenAI-compatible API on 127.0.0.1 (docs/serving.md).
// Run `hashhop serve --help`; `--port 0` picks a free port and prints "listening on http://HOST:PORT".
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "answer_path.h"
#include "command.h"
#include "context_parallel_option.h"
#include "device_option.h"
#include "hashhop/serve/api_server.h"
#include "hashhop/serve/model_backend.h"
#include "size_option.h"

namespace hashhop::cli {
namespace {

struct Options {
  std::string model_dir;
  std::string model_name;
  std::string device = "auto";
  serve::ServerOptions server;
  std::string max_request_bytes = "64M";
  std::size_t cache_entries = 8;
  std::string cache_bytes = "8G";
  AnswerPath path;
  ContextParallelOption ranks;
};

int run_serve(Options o, const CLI::App& app) {
  const auto env = dist::dist_env_from_environment();
  const bool launcher = o.ranks.nproc > 1 && !env;  // this process only starts the ranks
  if (launcher || (env && env->world_size > 1)) {  // refused before any rank starts
    if (o.path.engine == "off") throw std::invalid_argument(o.ranks.named() + ": every prompt goes through the engine; drop --engine off");
    if (app.count("--cache-bytes") > 0)
      throw std::invalid_argument(o.ranks.named() + ": --cache-bytes does not apply (the ranks keep the same prompts, bounded by --cache-entries)");
  }
  // SIGINT/SIGTERM are taken by one thread (sigwait) that stops the server; blocked here, before the
  // process group and the model start threads, so every thread inherits the mask and none dies of them.
  // Not in the --nproc launcher itself: it must still receive them to forward them to rank 0. The other ranks
  // keep them blocked too: torchrun's stop sends SIGTERM to every rank, and they must outlive rank 0's last
  // requests; they exit when rank 0 releases them, or within a collective of rank 0's death.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // our own wake-up when the server ends by itself
  if (!launcher) pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A stop signal goes to rank 0, whose server finishes its requests and then releases the other ranks.
  auto joined = o.ranks.join_or_launch(dist::SignalRoute::rank_zero);
  if (!joined) return 0;  // --nproc launched the ranks, and they have finished
  const std::unique_ptr<dist::ProcessGroup> group = std::move(*joined);
  // A client that hangs up before its reply arrives must cost that reply only, not the server.
  ::signal(SIGPIPE, SIG_IGN);

  o.server.max_request_bytes = parse_size("--max-request-bytes", o.max_request_bytes);
  if (o.server.max_request_bytes == 0) throw std::invalid_argument("--max-request-bytes: must be > 0");
  const auto device = ContextParallelOption::device_for(parse_device(o.device), group.get());
  serve::BackendOptions backend_options;
  backend_options.device = device.str();
  backend_options.group = group.get();
  backend_options.heartbeat_seconds = o.ranks.timeout / 4;
  backend_options.chunk_bytes = o.path.chunk;
  backend_options.gated_only = o.path.gated_only;
  backend_options.cache_entries = o.cache_entries;
  backend_options.cache_bytes = parse_size("--cache-bytes", o.cache_bytes);
  const AnswerPath path = o.path;
  path.uses_engine(0);  // a bad --engine-above fails now, not on the first request
  if (parse_size("--device-bytes", o.path.device_bytes) > 0 || parse_size("--prefill-window", o.path.prefill_window) > 0 ||
      !o.path.block_window.empty() || !o.path.block_topk.empty())
    throw std::invalid_argument("--device-bytes / --prefill-window / --block-window / --block-topk: options of eval's byte engine; serve does not take them");
  backend_options.use_engine = [path](std::size_t bytes) { return path.uses_engine(bytes); };
  serve::ModelBackend backend(o.model_dir, backend_options);
  // Every rank refuses alike, before rank 0 would leave the others waiting. Context parallel, the byte family
  // runs its engine (sharded); in one process it answers from a ByteCache.
  if (backend.family() == "bytes" && ((o.path.engine == "on" && !group) || o.path.gated_only))
    throw std::invalid_argument("--engine on / --gated-only: serve does not run the byte-level model's one-process engine; eval does (" +
                                o.model_dir + ")");
  if (group && group->rank() != 0) {  // the other ranks hold shards and serve rank 0's lookups; no socket
    backend.follow();
    return 0;
  }
  o.server.model_name = o.model_name.empty() ? o.model_dir : o.model_name;
  serve::ApiServer server(backend, o.server);
  const int port = server.bind();
  std::printf("listening on http://%s:%d (model %s, %s family; OpenAI base URL http://%s:%d/v1)\n", o.server.host.c_str(), port,
              o.server.model_name.c_str(), backend.family().c_str(), o.server.host.c_str(), port);
  std::fflush(stdout);  // tests read the port from here

  std::atomic<bool> caught{false}, finished{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGUSR1) return;
    caught = true;
    std::fprintf(stderr, "hashhop serve: %s: finishing accepted requests, then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    // stop() is a no-op until the server runs, so a signal right after bind() waits for it to run; then
    // one stop() (httplib asserts on a second while requests drain).
    while (!finished && !server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!finished) server.stop();
  });
  server.run();
  finished = true;
  if (!caught) pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  backend.finish();  // context parallel: releases the other ranks
  std::fprintf(stderr, "hashhop serve: stopped\n");
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& root) {
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("serve", "Serve a trained model over an OpenAI-compatible API (/v1/completions, /v1/chat/completions)");
  app->add_option("--model", o->model_dir, "Model directory (config.json + model.pt), e.g. models/demo; either model family")->required();
  app->add_option("--model-name", o->model_name, "Model id in /v1/models and replies (default: the --model path)");
  app->add_option("--host", o->server.host, "Address to listen on (127.0.0.1: this machine only)")->capture_default_str();
  app->add_option("--port", o->server.port, "Port; 0 picks a free one (printed on stdout)")->check(CLI::Range(0, 65535))->capture_default_str();
  app->add_option("--max-request-bytes", o->max_request_bytes, "Largest request body (K/M/G suffixes); larger ones get 413")->capture_default_str();
  app->add_option("--threads", o->server.threads, "Connection threads (one per open connection)")->check(at_least(1))->capture_default_str();
  app->add_option("--max-queue", o->server.max_queue, "Requests holding or waiting for the model; more get 503 with Retry-After")
      ->check(at_least(1))
      ->capture_default_str();
  app->add_option("--retry-after", o->server.retry_after_s, "Seconds a 503 asks the client to wait")->check(at_least(0))->capture_default_str();
  app->add_option("--cache-entries", o->cache_entries, "Prefilled prompts kept in the prefix cache")->check(at_least(1))->capture_default_str();
  app->add_option("--cache-bytes", o->cache_bytes,
                  "Memory the prefix cache may hold (K/M/G suffixes); least recently used prompts go first, the newest stays")
      ->capture_default_str();
  app->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  app->add_flag("--log-requests", o->server.log_requests, "Print one line per request on stderr");
  o->path.add_options(app);
  o->ranks.add(app, "Either model family: ");
  return {app, [o, app] { return run_serve(*o, *app); }};
}

}  // namespace hashhop::cli
