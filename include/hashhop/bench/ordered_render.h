// Renders items [0, n) in fixed chunks on several threads and hands the chunks to a sink in order, in
// bounded memory (two buffers per thread). Used by the generator for prompt lines and JSONL targets.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace hashhop::bench {

// render(begin, end, out) writes items [begin, end) to out (at most chunk_capacity bytes) and returns
// the bytes written; it must be a pure function of its range, so the output does not depend on
// `threads`. sink(bytes, end) gets chunk after chunk in item order, on the calling thread, and may
// throw (a full disk): the workers are stopped and joined, and the exception goes on to the caller.
template <class Render, class Sink>
void render_in_order(std::uint64_t items, std::uint64_t items_per_chunk, std::size_t chunk_capacity, int threads,
                     const Render& render, const Sink& sink) {
  items_per_chunk = std::max<std::uint64_t>(items_per_chunk, 1);
  const std::uint64_t chunks = (items + items_per_chunk - 1) / items_per_chunk;
  const auto chunk_range = [&](std::uint64_t k) {
    return std::pair{k * items_per_chunk, std::min(items, (k + 1) * items_per_chunk)};
  };
  const std::uint64_t workers = std::min<std::uint64_t>(static_cast<std::uint64_t>(std::max(threads, 1)), chunks);
  if (workers <= 1) {
    std::vector<char> buffer(chunk_capacity);
    for (std::uint64_t k = 0; k < chunks; ++k) {
      const auto [begin, end] = chunk_range(k);
      sink(std::string_view(buffer.data(), render(begin, end, buffer.data())), end);
    }
    return;
  }

  // Chunk k goes to worker k % workers and slot k % slots; two slots per worker let a worker render its
  // next chunk while the sink writes the previous one.
  struct Slot {
    std::vector<char> bytes;
    std::size_t size = 0;
    std::uint64_t chunk = UINT64_MAX;  // the chunk held, ready for the sink; UINT64_MAX: free
  };
  const std::uint64_t slot_count = 2 * workers;
  std::vector<Slot> slots(slot_count);
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t consumed = 0;  // chunks the sink has taken; slot k % slot_count is free once consumed > k - slot_count
  bool stop = false;
  std::exception_ptr failure;

  const auto work = [&](std::uint64_t first) {
    try {
      for (std::uint64_t k = first; k < chunks; k += workers) {
        Slot& slot = slots[k % slot_count];
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return stop || consumed + slot_count > k; });
          if (stop) return;
        }
        if (slot.bytes.size() < chunk_capacity) slot.bytes.resize(chunk_capacity);
        const auto [begin, end] = chunk_range(k);
        const std::size_t size = render(begin, end, slot.bytes.data());
        std::lock_guard lock(mutex);
        slot.size = size;
        slot.chunk = k;
        changed.notify_all();
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!failure) failure = std::current_exception();
      stop = true;
      changed.notify_all();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (std::uint64_t w = 0; w < workers; ++w) pool.emplace_back(work, w);
  const auto finish = [&] {
    {
      std::lock_guard lock(mutex);
      stop = true;
      changed.notify_all();
    }
    for (auto& thread : pool) thread.join();
  };

  try {
    for (std::uint64_t k = 0; k < chunks; ++k) {
      Slot& slot = slots[k % slot_count];
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return slot.chunk == k || failure != nullptr; });
        if (failure) break;
      }
      sink(std::string_view(slot.bytes.data(), slot.size), chunk_range(k).second);
      std::lock_guard lock(mutex);
      slot.chunk = UINT64_MAX;
      ++consumed;
      changed.notify_all();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace hashhop::bench
