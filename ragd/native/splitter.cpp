#include "splitter.hpp"

#include <algorithm>
#include <stdexcept>

#include "find.hpp"
#include "utf8.hpp"

namespace ragd {

namespace {

constexpr size_t npos = std::string_view::npos;

// A contiguous run of the text, in bytes and in code points.
struct Piece {
  size_t byte_begin;
  size_t byte_end;
  size_t begin;
  size_t end;
};

// The input; pure ASCII makes code points equal bytes.
class Text {
 public:
  explicit Text(const Utf8View& text) : s_(text.bytes), ascii_(text.ascii()), length_(text.code_points) {}

  std::string_view bytes() const { return s_; }
  bool ascii() const { return ascii_; }
  Piece whole() const { return {0, s_.size(), 0, length_}; }

  // Code points in bytes [b, e).
  size_t count(size_t b, size_t e) const {
    return ascii_ ? e - b : count_code_points(s_.substr(b, e - b));
  }

  // Byte offset n code points after byte b.
  size_t advance(size_t b, size_t n) const {
    if (ascii_) return b + n;
    for (; n > 0; --n) b += sequence_length(static_cast<unsigned char>(s_[b]));
    return b;
  }

  // First occurrence of a non-empty sep in bytes [from, end), or npos. Byte
  // search is exact: a valid UTF-8 needle only matches at code point starts.
  size_t find(const std::string& sep, size_t from, size_t end) const {
    return find_separator(s_, sep, from, end);
  }

 private:
  std::string_view s_;
  bool ascii_;
  size_t length_;
};

// Collects chunks, stripping them as Python's str.strip() does.
class Output {
 public:
  Output(const Text& text, std::vector<ChunkSpan>& out) : text_(text), out_(out) {}

  // A chunk as LangChain's _join_docs makes it: stripped, dropped if empty.
  void add_stripped(Piece p) {
    const std::string_view s = text_.bytes();
    while (p.byte_begin < p.byte_end && is_python_space(decode_at(s, p.byte_begin))) {
      p.byte_begin += sequence_length(static_cast<unsigned char>(s[p.byte_begin]));
      ++p.begin;
    }
    while (p.byte_end > p.byte_begin) {
      size_t last = previous_boundary(s, p.byte_end);
      if (!is_python_space(decode_at(s, last))) break;
      p.byte_end = last;
      --p.end;
    }
    if (p.byte_begin < p.byte_end) add(p);
  }

  // A piece LangChain passes through untouched: too long, and no separator left.
  void add(const Piece& p) { out_.push_back({p.begin, p.end, p.byte_begin, p.byte_end}); }

 private:
  const Text& text_;
  std::vector<ChunkSpan>& out_;
};

// LangChain's _merge_splits with the empty joiner that keep_separator=True
// implies. Pieces arrive one at a time and only the current window is kept,
// so a megabyte line split into code points needs no megabyte-sized list.
class Merger {
 public:
  Merger(size_t size, size_t overlap, Output& out) : size_(size), overlap_(overlap), out_(out) {}

  // Small enough to be inlined into the loops that produce pieces (one call
  // per code point at the last resort); the work per chunk is out of line.
  void push(const Piece& p, size_t len) {
    if (total_ + len > size_ && head_ < window_.size()) emit_and_drop(len);
    window_.push_back({p.byte_begin, p.begin, len});
    total_ += len;
    byte_end_ = p.byte_end;
    end_ = p.end;
  }

  // Ends a run of small pieces: emits the last window and starts afresh.
  void flush() {
    if (head_ < window_.size()) out_.add_stripped(current());
    window_.clear();
    head_ = 0;
    total_ = 0;
  }

 private:
  struct Entry {
    size_t byte_begin;
    size_t begin;
    size_t len;
  };

  // The window is full for a piece of `len`: emit it, then drop pieces from
  // the front until what is left fits in the overlap and leaves room for the
  // new piece, exactly as LangChain pops.
  void emit_and_drop(size_t len) {
    out_.add_stripped(current());
    // Locals: written through members, the loop would reload them after
    // every store, since window_'s size_t fields might alias them.
    size_t total = total_, head = head_;
    while (total > overlap_ || (total + len > size_ && total > 0)) total -= window_[head++].len;
    total_ = total;
    head_ = head;
    // Reclaim dropped entries once they are half the window: amortised O(1)
    // per piece even when the overlap keeps most of a huge window.
    if (head_ * 2 > window_.size()) {
      window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  Piece current() const { return {window_[head_].byte_begin, byte_end_, window_[head_].begin, end_}; }

  size_t size_;
  size_t overlap_;
  Output& out_;
  std::vector<Entry> window_;  // entries before head_ have been dropped
  size_t head_ = 0;
  size_t total_ = 0;
  size_t byte_end_ = 0;
  size_t end_ = 0;
};

// Code-point sizing: LangChain's default length function, len().
class CharMeasure {
 public:
  explicit CharMeasure(const Text& text) : text_(text) {}

  size_t length(const Piece& p) const { return p.end - p.begin; }

  // The empty separator: list(text), one piece per code point.
  static constexpr size_t kUnitLevels = 1;
  template <class F>
  void for_each_unit(const Piece& p, size_t /*level*/, F&& f) const {
    const std::string_view s = text_.bytes();
    for (size_t b = p.byte_begin, cp = p.begin; b < p.byte_end; ++cp) {
      size_t next = b + (text_.ascii() ? 1 : sequence_length(static_cast<unsigned char>(s[b])));
      f(Piece{b, next, cp, cp + 1});
      b = next;
    }
  }

 private:
  const Text& text_;
};

// Token sizing from one tokenization of the whole document, so each piece
// costs two binary searches instead of a tokenizer call.
class TokenMeasure {
 public:
  TokenMeasure(const Text& text, const Tokens& tokens, size_t text_length) : text_(text) {
    if (tokens.words.size() != tokens.offsets.size())
      throw std::invalid_argument("one word id per token needed");
    for (size_t i = 0; i < tokens.offsets.size(); ++i) {
      const auto [start, end] = tokens.offsets[i];
      if (start > end || end > text_length)
        throw std::invalid_argument("token offset (" + std::to_string(start) + ", " + std::to_string(end) +
                                    ") outside the text of length " + std::to_string(text_length));
      // Zero-width tokens (special tokens) cover no text; the caller budgets for them.
      if (start == end) continue;
      starts_.push_back(start);
      ends_.push_back(end);
      if (i == 0 || !tokens.words[i] || tokens.words[i] != tokens.words[i - 1]) word_starts_.push_back(start);
    }
    for (auto* v : {&starts_, &ends_, &word_starts_}) std::sort(v->begin(), v->end());
  }

  // Tokens overlapping [begin, end): those starting before end minus those
  // ending by begin. A token cut by a piece boundary counts on both sides,
  // so summing pieces never undercounts a chunk.
  size_t length(const Piece& p) const {
    auto started = std::lower_bound(starts_.begin(), starts_.end(), p.end) - starts_.begin();
    auto ended = std::upper_bound(ends_.begin(), ends_.end(), p.begin) - ends_.begin();
    return static_cast<size_t>(started - ended);
  }

  // The empty separator: whole words first, since a chunk that starts inside
  // a word is tokenized differently on its own (WordPiece "##" pieces become
  // word starts) and may need more tokens than counted here; then, for a
  // word longer than chunk_size, single tokens. No chunk cuts a token.
  static constexpr size_t kUnitLevels = 2;
  template <class F>
  void for_each_unit(const Piece& p, size_t level, F&& f) const {
    const std::vector<size_t>& bounds = level == 0 ? word_starts_ : starts_;
    size_t b = p.byte_begin, cp = p.begin;
    for (auto it = std::upper_bound(bounds.begin(), bounds.end(), p.begin); it != bounds.end() && *it < p.end;
         ++it) {
      if (*it == cp) continue;  // several tokens may start at one offset
      size_t next = text_.advance(b, *it - cp);
      f(Piece{b, next, cp, *it});
      b = next;
      cp = *it;
    }
    f(Piece{b, p.byte_end, cp, p.end});
  }

 private:
  const Text& text_;
  std::vector<size_t> starts_;
  std::vector<size_t> ends_;
  std::vector<size_t> word_starts_;
};

// LangChain's _split_text: pick a separator, split on it keeping it at the
// start of each piece, merge the small pieces, recurse into the large ones.
template <class Measure>
class Recursion {
 public:
  Recursion(const Text& text, const Measure& measure, const std::vector<std::string>& separators,
            size_t size, size_t overlap, Output& out)
      : text_(text), measure_(measure), separators_(separators), size_(size), overlap_(overlap), out_(out) {}

  void split(const Piece& p, size_t first) {
    // The first separator that is empty or occurs in the piece; deeper
    // levels see only the separators after it.
    const size_t n = separators_.size();
    size_t i = first, match = npos;
    for (; i < n; ++i) {
      if (separators_[i].empty()) return split_units(p, 0);
      match = text_.find(separators_[i], p.byte_begin, p.byte_end);
      if (match != npos) break;
    }
    if (i == n) {  // no separator occurs: the piece is its own only split
      return merge([&](auto&& take) { take(p); }, [&](const Piece& big) { out_.add(big); });
    }
    merge([&](auto&& take) { split_at(p, separators_[i], match, take); },
          [&](const Piece& big) {
            if (i + 1 < n)
              split(big, i + 1);
            else
              out_.add(big);
          });
  }

 private:
  // The empty separator: the measure's units, coarsest level first (code
  // points; or words, then tokens).
  void split_units(const Piece& p, size_t level) {
    merge([&](auto&& take) { measure_.for_each_unit(p, level, take); },
          [&](const Piece& big) {
            if (level + 1 < Measure::kUnitLevels)
              split_units(big, level + 1);
            else
              out_.add(big);
          });
  }

  // Pieces shorter than chunk_size are merged; a longer one ends the run
  // of short ones and goes to `deeper`.
  template <class Generate, class Deeper>
  void merge(Generate&& generate, Deeper&& deeper) {
    Merger merger(size_, overlap_, out_);
    generate([&](const Piece& piece) {
      const size_t len = measure_.length(piece);
      if (len < size_) {
        merger.push(piece, len);
        return;
      }
      merger.flush();
      deeper(piece);
    });
    merger.flush();
  }

  // re.split with the separator kept at the start of each piece, empty
  // pieces dropped; matches do not overlap, as with re.split.
  template <class F>
  void split_at(const Piece& p, const std::string& sep, size_t match, F&& f) const {
    size_t b = p.byte_begin, cp = p.begin;
    for (; match != npos; match = text_.find(sep, match + sep.size(), p.byte_end)) {
      if (match == b) continue;  // only the first piece can be empty
      size_t end = cp + text_.count(b, match);
      f(Piece{b, match, cp, end});
      b = match;
      cp = end;
    }
    f(Piece{b, p.byte_end, cp, p.end});
  }

  const Text& text_;
  const Measure& measure_;
  const std::vector<std::string>& separators_;
  size_t size_;
  size_t overlap_;
  Output& out_;
};

template <class Measure>
std::vector<ChunkSpan> run(const Text& text, const Measure& measure, const std::vector<std::string>& separators,
                           size_t size, size_t overlap) {
  std::vector<ChunkSpan> chunks;
  const Piece whole = text.whole();
  if (whole.byte_end == 0) return chunks;
  Output out(text, chunks);
  Recursion<Measure>(text, measure, separators, size, overlap, out).split(whole, 0);
  return chunks;
}

}  // namespace

RecursiveSplitter::RecursiveSplitter(std::vector<std::string> separators, long long chunk_size,
                                     long long chunk_overlap)
    : separators_(std::move(separators)) {
  if (chunk_size <= 0)
    throw std::invalid_argument("chunk_size must be > 0, got " + std::to_string(chunk_size));
  if (chunk_overlap < 0)
    throw std::invalid_argument("chunk_overlap must be >= 0, got " + std::to_string(chunk_overlap));
  if (chunk_overlap > chunk_size)
    throw std::invalid_argument("chunk_overlap (" + std::to_string(chunk_overlap) +
                                ") must not exceed chunk_size (" + std::to_string(chunk_size) + ")");
  if (separators_.empty()) throw std::invalid_argument("separators must not be empty");
  for (const std::string& sep : separators_) checked_utf8(sep);
  chunk_size_ = static_cast<size_t>(chunk_size);
  chunk_overlap_ = static_cast<size_t>(chunk_overlap);
}

std::vector<ChunkSpan> RecursiveSplitter::split_chars(std::string_view text) const {
  return split_chars(checked_utf8(text));
}

std::vector<ChunkSpan> RecursiveSplitter::split_chars(const Utf8View& text) const {
  const Text t(text);
  return run(t, CharMeasure(t), separators_, chunk_size_, chunk_overlap_);
}

std::vector<ChunkSpan> RecursiveSplitter::split_tokens(std::string_view text, const Tokens& tokens) const {
  return split_tokens(checked_utf8(text), tokens);
}

std::vector<ChunkSpan> RecursiveSplitter::split_tokens(const Utf8View& text, const Tokens& tokens) const {
  const Text t(text);
  return run(t, TokenMeasure(t, tokens, text.code_points), separators_, chunk_size_, chunk_overlap_);
}

}  // namespace ragd
