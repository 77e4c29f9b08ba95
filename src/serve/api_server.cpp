// `hashhop serve`'s HTTP server over cpp-httplib (see api_server.h). A request is parsed and checked
// first (400s cost no model time), then admitted if fewer than --max-queue are running or waiting
// (else 503 + Retry-After), then answered; an admitted request is always answered. Tested by tests/serve.
#include "hashhop/serve/api_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "hashhop/serve/api_request.h"

namespace hashhop::serve {
namespace {

using nlohmann::json;

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  res.status = status;
  res.set_content(error_body(status, type, message), "application/json");
}

}  // namespace

ApiServer::ApiServer(ModelBackend& backend, ServerOptions options)
    : backend_(backend), options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  const int threads = std::max(1, options_.threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  http_->set_payload_max_length(options_.max_request_bytes);
  // A client that stops sending mid-request must not hold a connection thread for long.
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);
  routes();
}

ApiServer::~ApiServer() = default;

void ApiServer::routes() {
  auto& s = *http_;
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const auto c = backend_.cache_stats();
    send_json(res, 200, {{"status", "ok"}, {"model", options_.model_name}, {"family", backend_.family()},
                         {"admitted", admitted_.load()}, {"served", served_.load()}, {"rejected", rejected_.load()},
                         {"cache", {{"hits", c.hits}, {"misses", c.misses}, {"evictions", c.evictions}, {"entries", c.entries},
                                    {"bytes", c.bytes}, {"prefill_seconds", c.prefill_seconds}}}});
  });
  const auto models = [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"object", "list"},
                         {"data", json::array({{{"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "hashhop"}}})}});
  };
  s.Get("/v1/models", models);
  s.Get("/models", models);
  const auto completions = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      try {
        const ApiRequest request = parse_api_request(req.body, chat);
        if (!request.model.empty() && request.model != options_.model_name)
          throw HttpError(404, "invalid_request_error", "model '" + request.model.substr(0, 100) + "' does not exist; this server serves '" + options_.model_name + "'");
        std::vector<RawQuery> queries;
        for (std::size_t i = 0; i < request.prompts.size(); ++i) {
          const std::string field = chat ? "messages[-1].content" : request.prompts.size() > 1 ? "prompt[" + std::to_string(i) + "]" : "prompt";
          try {
            // Chat carries either a raw prompt or the question of eval's chat template.
            const std::string& p = request.prompts[i];
            queries.push_back(chat && p.rfind("Context:\n", 0) == 0 ? parse_chat_question(p) : parse_raw_prompt(p));
            backend_.check(queries.back());
          } catch (const std::invalid_argument& e) {
            throw bad_request(field + ": " + e.what());
          }
        }
        // Admission: a bounded number of requests may hold or wait for the model; the rest come back later.
        if (admitted_.fetch_add(1) >= options_.max_queue) {
          admitted_.fetch_sub(1);
          ++rejected_;
          res.set_header("Retry-After", std::to_string(options_.retry_after_s));
          throw HttpError(503, "server_overloaded", "the server is busy (" + std::to_string(options_.max_queue) + " requests queued); retry later");
        }
        struct Release {
          std::atomic<int>& count;
          ~Release() { count.fetch_sub(1); }
        } release{admitted_};
        std::vector<Choice> choices;
        for (std::size_t i = 0; i < queries.size(); ++i)
          choices.push_back(make_choice(request, queries[i], backend_.answer(queries[i]), request.prompts[i].size()));
        ++served_;
        send_json(res, 200, completion_reply(request, options_.model_name, choices, next_id_++));
      } catch (const HttpError& e) {
        send_error(res, e.status(), e.type(), e.what());
      } catch (const std::invalid_argument& e) {
        send_error(res, 400, "invalid_request_error", e.what());
      } catch (const std::bad_alloc&) {
        send_error(res, 500, "server_error", "out of memory");
      } catch (const std::exception& e) {
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));  // c10::Error appends a backtrace
        send_error(res, 500, "server_error", what);
      }
    };
  };
  s.Post("/v1/completions", completions(false));
  s.Post("/v1/chat/completions", completions(true));
  // httplib's own errors (no route: 404, a body over the limit: 413, a bad request line: 400) get the same
  // JSON error body as ours.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "HTTP " + std::to_string(res.status);
    std::string type = "invalid_request_error";
    if (res.status == 404) message = "no route " + req.method + " " + req.path.substr(0, 200) + " (try /v1/completions, /v1/chat/completions, /v1/models, /health)";
    if (res.status == 413) message = "request body over the limit of " + std::to_string(options_.max_request_bytes) + " bytes (--max-request-bytes)";
    if (res.status >= 500) type = "server_error";
    send_error(res, res.status, type, message);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr e) {
    std::string what = "internal error";
    try {
      if (e) std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    send_error(res, 500, "server_error", what.substr(0, what.find('\n')));
  });
  if (options_.log_requests) {
    s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "hashhop serve: %s %s -> %d (%zu bytes in, %zu out)\n", req.method.c_str(), req.path.c_str(), res.status,
                   req.body.size(), res.body.size());
    });
  }
}

int ApiServer::bind() {
  if (options_.port == 0) {
    const int port = http_->bind_to_any_port(options_.host);
    if (port <= 0) throw std::runtime_error("cannot listen on " + options_.host + " (any port)");
    return port;
  }
  if (!http_->bind_to_port(options_.host, options_.port))
    throw std::runtime_error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + " (in use, or a bad --host?)");
  return options_.port;
}

void ApiServer::run() { http_->listen_after_bind(); }

void ApiServer::stop() { http_->stop(); }

bool ApiServer::is_running() const { return http_->is_running(); }

}  // namespace hashhop::serve
