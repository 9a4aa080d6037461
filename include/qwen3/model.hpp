// qwen3/model.hpp - the Qwen3 forward pass.
//
//     qwen3::Model<qwen3::Qwen3_0_6B> model("Qwen3-0.6B.gguf");   // or a Hugging Face folder
//     qwen3::Session session(model);                              // KV arena + scratch + threads
//     std::span<const float> logits = session.eval(prompt_ids);   // prefill: one matrix-matrix pass
//     logits = session.eval(next_id);                             // decode: one matrix-vector pass
//
// A Model is the weights (immutable; share one between sessions). A Session is one sequence: its KV
// arena, its position, scratch buffers and a thread pool. forward() below reads top to bottom like
// the Qwen3 definition; the SIMD lives in kernels/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "kernels/activation.hpp"
#include "kernels/attention.hpp"
#include "kernels/linear.hpp"
#include "kernels/norm.hpp"
#include "kernels/rope.hpp"
#include "kv_arena.hpp"
#include "thread_pool.hpp"
#include "weights.hpp"

namespace qwen3 {

// How a Model prepares its weights.
struct ModelOptions {
    // Copy weights at load into memory laid out for decode (Weights::make_decode_copies): quantized
    // matrices into the decode kernels' layout of 16-row groups where this CPU has one (AVX-512 VNNI
    // or AVX2; Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K), which decodes up to twice as fast per core and
    // costs memory as large as those matrices; float matrices of large models into huge pages when
    // the file's pages are small ones (the file's pages are then released). Skipped when
    // MemAvailable cannot hold the copies. Off: everything reads the mapped file in place.
    bool copy_for_decode = true;
    // Tuning knobs of those copies, for experiments and tests; the defaults are the measured choices.
    DecodeCopyTuning copy_tuning = {};
};

template <class Cfg>
class Model {
public:
    using config = Cfg;

    // Opens and binds a .gguf file or a Hugging Face folder. Throws Error (io, format, unsupported,
    // config_mismatch, missing_tensor, shape_mismatch) naming what does not fit.
    explicit Model(const std::string& path, ModelOptions options = {}) : Model(Checkpoint::open(path), options) {}
    explicit Model(Checkpoint checkpoint, ModelOptions options = {})
        : checkpoint_(std::make_shared<const Checkpoint>(std::move(checkpoint))),
          weights_(Weights<Cfg>::bind(*checkpoint_)),
          rope_(checkpoint_->params().rope_theta, checkpoint_->params().rope_scaling),
          rms_norm_eps_(float(checkpoint_->params().rms_norm_eps)) {
        if (options.copy_for_decode) weights_.make_decode_copies(default_thread_count(), options.copy_tuning);
    }

    const Checkpoint& checkpoint() const { return *checkpoint_; }
    const ModelParams& params() const { return checkpoint_->params(); }
    const Weights<Cfg>& weights() const { return weights_; }
    const detail::Rope<Cfg::head_dim>& rope() const { return rope_; }
    float rms_norm_eps() const { return rms_norm_eps_; }

private:
    std::shared_ptr<const Checkpoint> checkpoint_;
    Weights<Cfg> weights_;
    detail::Rope<Cfg::head_dim> rope_;
    float rms_norm_eps_;
};

// Tokens processed per forward chunk during prefill: sizes the scratch buffers.
inline constexpr int kMaxBatch = 512;

// How prefill multiplies BF16 weights.
enum class Precision {
    // f32 products: weights widened to f32, results within float rounding of an f32 reference.
    exact,
    // Activations rounded to bf16 and multiplied with AVX-512 BF16 dot products where the CPU has
    // them: about twice the prefill speed on BF16 models, logits within ~1e-3 of exact (what
    // llama.cpp's CPU backend computes for BF16 weights). Decode is unaffected (it is memory-bound).
    bf16_products,
};

struct SessionOptions {
    int threads = default_thread_count();  // counts the calling thread
    Precision precision = Precision::exact;
};

namespace detail {

// Throws Error(invalid_argument) naming the first id outside the vocabulary.
template <class Cfg>
void check_token_ids(std::span<const std::int32_t> tokens) {
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= Cfg::vocab)
            fail(ErrorCode::invalid_argument, "token id ", tokens[i], " at index ", i, " is outside the vocabulary [0, ",
                 Cfg::vocab, ")");
}

// A run of consecutive tokens of one sequence in a batch: tokens [first, first + count) of the batch
// take positions [pos0, pos0 + count) of the sequence whose keys and values `kv` holds (an arena or
// a sequence's pages: key_block(layer, kv_head, block), value_row(layer, kv_head, pos) and
// store(layer, kv_head, pos, k, v)).
template <class KVStore>
struct Segment {
    KVStore* kv;
    int first, count, pos0;
};

// The Qwen3 forward pass over a batch of tokens from one or several sequences. The first `decode`
// tokens of a batch are single-token segments (decode steps), multiplied by matrix-vector kernels
// that read each weight once for all of them; the rest are prompt chunks, multiplied by the
// matrix-matrix kernels. A token's result does not depend on the others in its batch.
template <class Cfg>
class ForwardPass {
public:
    static constexpr int H = Cfg::hidden, Q = Cfg::q_dim, KVD = Cfg::kv_dim, F = Cfg::ffn, D = Cfg::head_dim;
    // Decode tokens of one batch at most (sequences stepping together).
    static constexpr int kMaxDecode = 64;

    ForwardPass(std::shared_ptr<ThreadPool> pool, Precision precision, int max_tokens)
        : pool_(std::move(pool)), max_tokens_(max_tokens) {
        scratch_.resize(std::size_t(max_tokens) * kScratchPerToken);
        segment_of_.resize(std::size_t(max_tokens));
        normed_in_ = std::make_unique<Input<H, kMaxBatch>>();
        attention_in_ = std::make_unique<Input<Q, kMaxBatch>>();
        ffn_in_ = std::make_unique<Input<F, kMaxBatch>>();
        all_final_in_ = std::make_unique<Input<H, kMaxBatch>>();
        final_in_ = std::make_unique<Input<H, kMaxDecode>>(true);
        normed_decode_ = std::make_unique<Input<H, kMaxDecode>>(true);
        attention_decode_ = std::make_unique<Input<Q, kMaxDecode>>(true);
        ffn_decode_ = std::make_unique<Input<F, kMaxDecode>>(true);
        const bool bf16 = precision == Precision::bf16_products;
        normed_in_->allow_bf16_products(bf16);
        attention_in_->allow_bf16_products(bf16);
        ffn_in_->allow_bf16_products(bf16);
        all_final_in_->allow_bf16_products(bf16);
    }

    ThreadPool& pool() { return *pool_; }
    int max_tokens() const { return max_tokens_; }

    // Runs `tokens` (n of them, n <= max_tokens()), laid out by `segments`: the first `decode` tokens
    // are single-token segments, the prompt chunks follow. Writes the logits of the tokens listed in
    // `logit_rows` (batch indices) to logits[i * vocab ...], or, when `all_logits` is set, every
    // token's logits (then n <= kMaxBatch and there is one segment).
    template <class KVStore>
    void run(const Model<Cfg>& model, const std::int32_t* tokens, int n, std::span<const Segment<KVStore>> segments, int decode,
             std::span<const int> logit_rows, float* logits, float* all_logits = nullptr);

private:
    static constexpr std::size_t kScratchPerToken = 3 * H + 2 * Q + 2 * KVD + 2 * F + D;

    template <int Rows, int Cols>
    struct Projection {
        const Matrix<Rows, Cols>& w;
        float* out;  // [tokens][Rows]
    };

    // out[t] = W in[t] for the tokens of `batched` (decode: matrix-vector kernels reading each weight
    // once for all of them) and of `prefill` (matrix-matrix kernels), for every projection given
    // (matrices that read the same input), as one job: their rows are concatenated and split across
    // the pool, so q, k and v (or gate and up) cost one dispatch. `prefill_out` is where the prefill
    // tokens' rows start in each output.
    template <int Cols, int MaxDecode, int MaxTokens, int... Rows>
    void project(Input<Cols, MaxDecode>& batched, Input<Cols, MaxTokens>& prefill, Projection<Rows, Cols>... targets) {
        auto parallel = [this](int n, auto&& fn) { pool_->run(n, fn); };
        const int nd = batched.tokens(), np = prefill.tokens();
        if (nd) (batched.prepare(targets.w.type, parallel), ...);
        if (np) (prefill.prepare(targets.w.type, parallel), ...);
        constexpr int total = (Rows + ...);
        pool_->for_ranges(total, 16, [&](int begin, int end) {
            int offset = 0;
            auto run = [&](const auto& target) {
                constexpr int R = std::remove_reference_t<decltype(target.w)>::rows;
                const int b = std::max(begin - offset, 0), e = std::min(end - offset, R);
                if (b < e) {
                    if (nd == 1) matvec(target.w, batched, target.out, b, e);
                    else if (nd > 1) matvec_batch(target.w, batched, target.out, R, b, e);
                    if (np == 1) matvec(target.w, prefill, target.out + std::size_t(nd) * R, b, e);
                    else if (np > 1) matmul(target.w, prefill, target.out + std::size_t(nd) * R, R, b, e);
                }
                offset += R;
            };
            (run(targets), ...);
        });
    }

    std::shared_ptr<ThreadPool> pool_;
    int max_tokens_;
    std::vector<float> scratch_;
    std::vector<int> segment_of_;  // the segment of each token of a batch
    // the attention's tasks of a batch (run()): each segment's first task, its decode parts and
    // their length in positions, the split segments, where their parts start in attention_parts_
    std::vector<int> task_start_, parts_, part_length_;
    std::vector<std::size_t> split_segments_, part_offset_;
    std::vector<SoftmaxRows<Cfg::group, D>> attention_parts_;
    std::vector<float> final_rows_;
    // the distinct inputs of the projections, each prepared once per use: the prompt tokens' ...
    std::unique_ptr<Input<H, kMaxBatch>> normed_in_;     // q, k, v, gate, up read the normed residual
    std::unique_ptr<Input<Q, kMaxBatch>> attention_in_;  // the output projection reads attention
    std::unique_ptr<Input<F, kMaxBatch>> ffn_in_;        // down reads silu(gate) * up
    // ... and the decode tokens'
    std::unique_ptr<Input<H, kMaxDecode>> normed_decode_;
    std::unique_ptr<Input<Q, kMaxDecode>> attention_decode_;
    std::unique_ptr<Input<F, kMaxDecode>> ffn_decode_;
    std::unique_ptr<Input<H, kMaxDecode>> final_in_;     // the output matrix reads the final norm of the rows asked for
    std::unique_ptr<Input<H, kMaxBatch>> all_final_in_;  // ... or of every token, when all logits are asked for
};

}  // namespace detail

template <class Cfg, class KV = DefaultKV>
class Session {
public:
    static constexpr int capacity = Cfg::max_context;

    // `model` must outlive the session. threads counts the calling thread.
    explicit Session(const Model<Cfg>& model, int threads = default_thread_count())
        : Session(model, SessionOptions{threads, Precision::exact}) {}
    Session(const Model<Cfg>& model, SessionOptions options)
        : Session(model, std::make_shared<ThreadPool>(options.threads), options.precision) {}
    Session(const Model<Cfg>& model, std::shared_ptr<ThreadPool> pool, Precision precision = Precision::exact)
        : model_(&model), forward_(std::move(pool), precision, kMaxBatch), arena_(std::make_unique<KVArena<Cfg, KV>>()) {
        logits_.resize(Cfg::vocab);
    }

    const Model<Cfg>& model() const { return *model_; }
    ThreadPool& pool() { return forward_.pool(); }
    // Tokens in the KV arena (the position the next token will take).
    int position() const { return position_; }
    // Logits of the last token evaluated (Cfg::vocab floats).
    std::span<const float> logits() const { return logits_; }

    // Forgets every token.
    void reset() { position_ = 0; }
    // Keeps the first n tokens (a shared prompt prefix) and forgets the rest.
    // Throws Error(invalid_argument) unless 0 <= n <= position().
    void truncate(int n) {
        if (n < 0 || n > position_)
            detail::fail(ErrorCode::invalid_argument, "Session::truncate(", n, "): must be between 0 and the position ", position_);
        position_ = n;
    }
    // Returns the arena's pages past the current position to the OS.
    void release_memory() { arena_->release_from(position_); }

    // Runs `tokens` at positions [position(), position() + n) and returns the logits of the last one.
    // Several tokens are one prefill (matrix-matrix work, in chunks of kMaxBatch); one token is a
    // decode step (matrix-vector). If `all_logits` is non-empty it must hold n * Cfg::vocab floats and
    // receives every position's logits, row-major. Throws Error(context_overflow) when the tokens do not
    // fit in the arena, Error(invalid_argument) for an id outside the vocabulary; on error the session
    // keeps its previous position.
    std::span<const float> eval(std::span<const std::int32_t> tokens, std::span<float> all_logits = {});
    std::span<const float> eval(std::int32_t token) { return eval(std::span<const std::int32_t>(&token, 1)); }

private:
    const Model<Cfg>* model_;
    detail::ForwardPass<Cfg> forward_;
    std::unique_ptr<KVArena<Cfg, KV>> arena_;
    std::vector<float> logits_;
    int position_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Out-of-class definitions: not implicitly inline, so QWEN3_EXTERN_VARIANT can keep a program from
// compiling the forward pass in every translation unit that uses a session.

template <class Cfg, class KV>
std::span<const float> Session<Cfg, KV>::eval(std::span<const std::int32_t> tokens, std::span<float> all_logits) {
    const std::size_t n = tokens.size();
    if (n == 0) detail::fail(ErrorCode::invalid_argument, "Session::eval: no tokens given");
    if (!all_logits.empty() && all_logits.size() != n * std::size_t(Cfg::vocab))
        detail::fail(ErrorCode::invalid_argument, "Session::eval: all_logits holds ", all_logits.size(),
                     " floats, expected ", n, " x ", Cfg::vocab);
    if (n > std::size_t(capacity - position_))
        detail::fail(ErrorCode::context_overflow, "the KV arena holds ", capacity, " positions (variant ", Cfg::name,
                     "); ", position_, " are used and ", n, " more do not fit");
    detail::check_token_ids<Cfg>(tokens);
    for (std::size_t done = 0; done < n;) {
        const int chunk = int(std::min<std::size_t>(kMaxBatch, n - done));
        float* rows = all_logits.empty() ? nullptr : all_logits.data() + done * std::size_t(Cfg::vocab);
        const detail::Segment<KVArena<Cfg, KV>> segment{arena_.get(), 0, chunk, position_};
        const int last = chunk - 1;
        forward_.run(*model_, tokens.data() + done, chunk, std::span(&segment, 1), chunk == 1 ? 1 : 0, std::span(&last, 1),
                     logits_.data(), rows);
        position_ += chunk;
        done += std::size_t(chunk);
    }
    return logits_;
}

namespace detail {

// The Qwen3 forward pass over one batch.
template <class Cfg>
template <class KVStore>
void ForwardPass<Cfg>::run(const Model<Cfg>& model, const std::int32_t* tokens, int n, std::span<const Segment<KVStore>> segments,
                           int decode, std::span<const int> logit_rows, float* logits, float* all_logits) {
    const Weights<Cfg>& w = model.weights();
    const float eps = model.rms_norm_eps();
    const int prefill = n - decode;

    // scratch, token-major: x (residual), h (normed), q, k, v, attn, gate, up
    float* x = scratch_.data();
    float* h = x + std::size_t(n) * H;
    float* q = h + std::size_t(n) * H;
    float* k = q + std::size_t(n) * Q;
    float* v = k + std::size_t(n) * KVD;
    float* attn = v + std::size_t(n) * KVD;
    float* gate = attn + std::size_t(n) * Q;
    float* up = gate + std::size_t(n) * F;
    float* rope_cs = up + std::size_t(n) * F;  // [n][cos half | sin half]
    std::vector<int>& segment_of = segment_of_;
    for (std::size_t s = 0; s < segments.size(); ++s)
        for (int t = segments[s].first; t < segments[s].first + segments[s].count; ++t) segment_of[std::size_t(t)] = int(s);
    auto position = [&](int t) {
        const Segment<KVStore>& s = segments[std::size_t(segment_of[std::size_t(t)])];
        return s.pos0 + t - s.first;
    };

    // the per-token steps between the projections, split over the pool in contiguous ranges of tokens
    auto each_token = [&](auto&& step) {
        pool_->for_ranges(n, 1, [&](int begin, int end) {
            for (int t = begin; t < end; ++t) step(t);
        });
    };
    // the decode tokens' rows and the prompt tokens' rows of an activation, as the projections' inputs
    auto set_inputs = [&](auto& batched, auto& chunk, const float* rows, int width) {
        batched.set(rows, decode);
        chunk.set(rows + std::size_t(decode) * width, prefill);
    };

    each_token([&](int t) {
        dequantize_row(w.token_embd, tokens[t], x + std::size_t(t) * H);
        model.rope().angles(position(t), rope_cs + std::size_t(t) * D, rope_cs + std::size_t(t) * D + D / 2);
    });

    // Attention tasks, per KV head: a prompt chunk's queries kQueriesPerTask at a time; a decode
    // token one task, or, when the decode tokens alone would leave threads idle, `parts` tasks over
    // consecutive ranges of its positions, combined afterwards (flash-decoding).
    constexpr int kQueriesPerTask = 4;
    constexpr int kMinPartPositions = 512;  // below this a part's fixed costs outweigh the parallelism
    std::vector<int>& task_start = task_start_;
    std::vector<int>& parts = parts_;
    std::vector<int>& part_length = part_length_;
    std::vector<std::size_t>& split = split_segments_;
    std::vector<std::size_t>& part_offset = part_offset_;  // of each split segment's first part
    task_start.assign(segments.size(), 0);
    parts.assign(segments.size(), 1);
    part_length.assign(segments.size(), 0);
    part_offset.assign(segments.size(), 0);
    split.clear();
    const int wanted_parts = decode > 0 && prefill == 0 ? (2 * pool_->size() + decode * Cfg::kv_heads - 1) / (decode * Cfg::kv_heads) : 1;
    int attention_tasks = 0;
    std::size_t part_count = 0;
    for (std::size_t si = 0; si < segments.size(); ++si) {
        const Segment<KVStore>& s = segments[si];
        task_start[si] = attention_tasks;
        if (s.count == 1 && wanted_parts > 1) {
            const int n = s.pos0 + 1;
            const int p = std::min(wanted_parts, n / kMinPartPositions);
            if (p > 1) {
                part_length[si] = (n + p - 1) / p;
                part_length[si] = (part_length[si] + kKeyBlock - 1) / kKeyBlock * kKeyBlock;  // parts begin at a key block
                parts[si] = (n + part_length[si] - 1) / part_length[si];
                split.push_back(si);
                part_offset[si] = part_count;
                part_count += std::size_t(parts[si]) * Cfg::kv_heads;
            }
        }
        attention_tasks += s.count == 1 ? parts[si] : (s.count + kQueriesPerTask - 1) / kQueriesPerTask;
    }
    if (attention_parts_.size() < part_count) attention_parts_.resize(part_count);
    auto part_rows = [&](std::size_t si, int g, int part) {
        return attention_parts_.data() + part_offset[si] + std::size_t(g) * parts[si] + part;
    };

    for (int l = 0; l < Cfg::layers; ++l) {
        const LayerWeights<Cfg>& L = w.layers[std::size_t(l)];

        // attention block
        each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, L.attn_norm, eps, h + std::size_t(t) * H); });
        set_inputs(*normed_decode_, *normed_in_, h, H);
        project(*normed_decode_, *normed_in_, Projection<Q, H>{L.attn_q, q}, Projection<KVD, H>{L.attn_k, k},
                Projection<KVD, H>{L.attn_v, v});
        each_token([&](int t) {
            const float* cs = rope_cs + std::size_t(t) * D;
            for (int hd = 0; hd < Cfg::heads; ++hd) {
                float* qh = q + std::size_t(t) * Q + std::size_t(hd) * D;
                rms_norm<D>(qh, L.attn_q_norm, eps, qh);
                apply_rope<D>(qh, cs, cs + D / 2);
            }
            KVStore& kv = *segments[std::size_t(segment_of[std::size_t(t)])].kv;
            for (int g = 0; g < Cfg::kv_heads; ++g) {
                float* kh = k + std::size_t(t) * KVD + std::size_t(g) * D;
                rms_norm<D>(kh, L.attn_k_norm, eps, kh);
                apply_rope<D>(kh, cs, cs + D / 2);
                kv.store(l, g, position(t), kh, v + std::size_t(t) * KVD + std::size_t(g) * D);
            }
        });
        const float scale = 1.0f / std::sqrt(float(D));
        // head by head: the threads take neighbouring tasks, which read the same head's keys and
        // values while they are in the last-level cache (a long prompt's exceed it layer by layer)
        pool_->run(attention_tasks * Cfg::kv_heads, [&](int task) {
            const int g = task / attention_tasks;
            const int slot = task % attention_tasks;  // the segment's chunk or part
            const std::size_t si = std::size_t(std::upper_bound(task_start.begin(), task_start.end(), slot) - task_start.begin() - 1);
            const Segment<KVStore>& s = segments[si];
            const int chunk = slot - task_start[si];
            const int t = s.first + chunk * kQueriesPerTask;  // the task's first query, in the batch
            const std::size_t head_offset = std::size_t(s.first) * Q + std::size_t(g) * Cfg::group * D;
            if (s.count > 1) {
                const std::size_t offset = head_offset + std::size_t(t - s.first) * Q;
                attend<D, Cfg::group, typename KVStore::element, kQueriesPerTask>(q + offset, *s.kv, l, g, s.pos0 + (t - s.first) + 1, scale,
                                                                                  attn + offset, std::min(kQueriesPerTask, s.first + s.count - t), Q);
            } else if (parts[si] == 1) {
                attend<D, Cfg::group, typename KVStore::element>(q + head_offset, *s.kv, l, g, s.pos0 + 1, scale, attn + head_offset);
            } else {
                const int begin = chunk * part_length[si];
                attend_part<D, Cfg::group, typename KVStore::element>(q + head_offset, *s.kv, l, g, begin,
                                                                      std::min(begin + part_length[si], s.pos0 + 1), scale,
                                                                      *part_rows(si, g, chunk));
            }
        });
        if (!split.empty())
            pool_->run(int(split.size()) * Cfg::kv_heads, [&](int task) {
                const std::size_t si = split[std::size_t(task / Cfg::kv_heads)];
                const int g = task % Cfg::kv_heads;
                const Segment<KVStore>& s = segments[si];
                combine_parts<D, Cfg::group>(part_rows(si, g, 0), parts[si], attn + std::size_t(s.first) * Q + std::size_t(g) * Cfg::group * D);
            });
        set_inputs(*attention_decode_, *attention_in_, attn, Q);
        project(*attention_decode_, *attention_in_, Projection<H, Q>{L.attn_output, h});
        each_token([&](int t) { add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H); });

        // feed-forward block (SwiGLU)
        each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, L.ffn_norm, eps, h + std::size_t(t) * H); });
        set_inputs(*normed_decode_, *normed_in_, h, H);
        project(*normed_decode_, *normed_in_, Projection<F, H>{L.ffn_gate, gate}, Projection<F, H>{L.ffn_up, up});
        each_token([&](int t) { swiglu<F>(gate + std::size_t(t) * F, up + std::size_t(t) * F); });
        set_inputs(*ffn_decode_, *ffn_in_, gate, F);
        project(*ffn_decode_, *ffn_in_, Projection<H, F>{L.ffn_down, h});
        each_token([&](int t) { add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H); });
    }

    each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, w.output_norm, eps, x + std::size_t(t) * H); });
    if (all_logits) {  // every token's logits, as a prompt chunk's matrix-matrix pass (one token: matrix-vector)
        all_final_in_->set(x, n);
        final_in_->set(nullptr, 0);
        project(*final_in_, *all_final_in_, Projection<Cfg::vocab, H>{w.output, all_logits});
        for (std::size_t i = 0; i < logit_rows.size(); ++i)
            std::copy_n(all_logits + std::size_t(logit_rows[i]) * Cfg::vocab, Cfg::vocab, logits + i * Cfg::vocab);
        return;
    }
    // the rows asked for, side by side, read like decode tokens (one pass over the output matrix)
    const int rows = int(logit_rows.size());
    final_rows_.resize(std::size_t(rows) * H);
    for (int i = 0; i < rows; ++i)
        std::copy_n(x + std::size_t(logit_rows[std::size_t(i)]) * H, H, final_rows_.data() + std::size_t(i) * H);
    final_in_->set(final_rows_.data(), rows);
    all_final_in_->set(nullptr, 0);
    project(*final_in_, *all_final_in_, Projection<Cfg::vocab, H>{w.output, logits});
}

}  // namespace detail

template <class Cfg>
Session(const Model<Cfg>&) -> Session<Cfg>;
template <class Cfg>
Session(const Model<Cfg>&, int) -> Session<Cfg>;
template <class Cfg>
Session(const Model<Cfg>&, SessionOptions) -> Session<Cfg>;

}  // namespace qwen3

// Compile a variant's forward pass once: put QWEN3_INSTANTIATE_VARIANT(Cfg) in one .cpp file and
// QWEN3_EXTERN_VARIANT(Cfg) where other files use qwen3::Session<Cfg> (the default KV type).
#define QWEN3_EXTERN_VARIANT(...) extern template class qwen3::Session<__VA_ARGS__>;
#define QWEN3_INSTANTIATE_VARIANT(...) template class qwen3::Session<__VA_ARGS__>;
