#include "splitter.hpp"

#include <algorithm>
#include <stdexcept>

#include "find.hpp"
#include "utf8.hpp"

namespace ragd {

namespace {

constexpr size_t npos = std::string_view::npos;

// A contiguous run of the text, in code units and in code points.
struct Piece {
  size_t byte_begin;  // code units: bytes of UTF-8, elements of a fixed-width text
  size_t byte_end;
  size_t begin;
  size_t end;
};

// Text with one code unit per code point: a CPython str of any kind, or
// ASCII UTF-8. Counting is subtraction.
template <class Unit>
class FixedText {
 public:
  FixedText(const Unit* s, size_t n) : s_(s), n_(n) {}

  Piece whole() const { return {0, n_, 0, n_}; }
  size_t count(size_t b, size_t e) const { return e - b; }
  size_t advance(size_t b, size_t n) const { return b + n; }
  size_t next(size_t b) const { return b + 1; }
  size_t previous(size_t e) const { return e - 1; }
  bool space_at(size_t b) const { return is_python_space(static_cast<char32_t>(s_[b])); }

  size_t find(const Separator<Unit>& sep, size_t from, size_t end) const {
    return find_units(s_, sep.units.data(), sep.units.size(), from, end);
  }

  // The span of a piece: unit offsets are code points.
  static ChunkSpan span(const Piece& p) { return {p.byte_begin, p.byte_end, p.byte_begin, p.byte_end}; }

 private:
  const Unit* s_;
  size_t n_;
};

// Valid UTF-8 that is not all ASCII.
class Utf8Text {
 public:
  explicit Utf8Text(const Utf8View& text)
      : s_(text.bytes), u_(reinterpret_cast<const uint8_t*>(text.bytes.data())), length_(text.code_points) {}

  Piece whole() const { return {0, s_.size(), 0, length_}; }

  // Code points in bytes [b, e).
  size_t count(size_t b, size_t e) const { return count_code_points(s_.substr(b, e - b)); }

  // Byte offset n code points after byte b.
  size_t advance(size_t b, size_t n) const {
    for (; n > 0; --n) b = next(b);
    return b;
  }
  size_t next(size_t b) const { return b + sequence_length(u_[b]); }
  size_t previous(size_t e) const { return previous_boundary(s_, e); }
  bool space_at(size_t b) const { return is_python_space(decode_at(s_, b)); }

  // Byte search is exact: a valid UTF-8 needle only matches at code point starts.
  size_t find(const Separator<uint8_t>& sep, size_t from, size_t end) const {
    return find_units(u_, sep.units.data(), sep.units.size(), from, end);
  }

  static ChunkSpan span(const Piece& p) { return {p.begin, p.end, p.byte_begin, p.byte_end}; }

 private:
  std::string_view s_;
  const uint8_t* u_;
  size_t length_;
};

// Collects chunks, stripping them as Python's str.strip() does.
template <class TextT>
class Output {
 public:
  Output(const TextT& text, std::vector<ChunkSpan>& out) : text_(text), out_(out) {}

  // A chunk as LangChain's _join_docs makes it: stripped, dropped if empty.
  void add_stripped(Piece p) {
    while (p.byte_begin < p.byte_end && text_.space_at(p.byte_begin)) {
      p.byte_begin = text_.next(p.byte_begin);
      ++p.begin;
    }
    while (p.byte_end > p.byte_begin) {
      const size_t last = text_.previous(p.byte_end);
      if (!text_.space_at(last)) break;
      p.byte_end = last;
      --p.end;
    }
    if (p.byte_begin < p.byte_end) add(p);
  }

  // A piece LangChain passes through untouched: too long, and no separator left.
  void add(const Piece& p) { out_.push_back(TextT::span(p)); }

 private:
  const TextT& text_;
  std::vector<ChunkSpan>& out_;
};

// LangChain's _merge_splits with the empty joiner that keep_separator=True
// implies. Pieces arrive one at a time and only the current window is kept,
// so a megabyte line split into code points needs no megabyte-sized list.
// The window's memory is the scratch's, kept from one document to the next.
template <class Out>
class Merger {
 public:
  using Entry = SplitScratch::Entry;

  Merger(size_t size, size_t overlap, Out& out, std::vector<Entry>& window)
      : size_(size), overlap_(overlap), out_(out), home_(window) {
    // The scratch's window, borrowed for the merger's life (so its memory
    // serves document after document) and held as a member of its own.
    window_.swap(home_);
    window_.clear();
  }
  ~Merger() { window_.swap(home_); }
  Merger(const Merger&) = delete;
  Merger& operator=(const Merger&) = delete;

  // Small enough to be inlined into the loops that produce pieces (one call
  // per word, or per token at token mode's last resort); the work per chunk
  // is out of line.
  void push(Piece p, size_t len) {
    if (total_ + len > size_ && head_ < window_.size()) emit_and_drop(len);
    // Field by field: built whole, the entry went through the stack, and
    // gcc reloaded it with one wide load the two narrow stores could not
    // forward to (a stall per piece).
    Entry& e = window_.emplace_back();
    e.unit_begin = p.byte_begin;
    e.begin = p.begin;
    e.len = len;
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

  Piece current() const { return {window_[head_].unit_begin, byte_end_, window_[head_].begin, end_}; }

  size_t size_;
  size_t overlap_;
  Out& out_;
  std::vector<Entry>& home_;   // the scratch's window, given back on destruction
  std::vector<Entry> window_;  // entries before head_ have been dropped
  size_t head_ = 0;
  size_t total_ = 0;
  size_t byte_end_ = 0;
  size_t end_ = 0;
};

// Code-point sizing: LangChain's default length function, len().
template <class TextT>
class CharMeasure {
 public:
  explicit CharMeasure(const TextT& text) : text_(text) {}

  size_t length(const Piece& p) const { return p.end - p.begin; }

  // The empty separator: list(text), one piece per code point.
  static constexpr size_t kUnitLevels = 1;
  static constexpr bool kUnitsAreCodePoints = true;
  template <class F>
  void for_each_unit(const Piece& p, size_t /*level*/, F&& f) const {
    for (size_t b = p.byte_begin, cp = p.begin; b < p.byte_end; ++cp) {
      const size_t next = text_.next(b);
      f(Piece{b, next, cp, cp + 1});
      b = next;
    }
  }

 private:
  const TextT& text_;
};

// Token sizing from one tokenization of the whole document, so each piece
// costs two binary searches instead of a tokenizer call.
template <class TextT>
class TokenMeasure {
 public:
  TokenMeasure(const TextT& text, const Tokens& tokens, size_t text_length) : text_(text) {
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
  static constexpr bool kUnitsAreCodePoints = false;
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
  const TextT& text_;
  std::vector<size_t> starts_;
  std::vector<size_t> ends_;
  std::vector<size_t> word_starts_;
};

// LangChain's _split_text: pick a separator, split on it keeping it at the
// start of each piece, merge the small pieces, recurse into the large ones.
template <class TextT, class Measure, class Unit>
class Recursion {
 public:
  Recursion(const TextT& text, const Measure& measure, const std::vector<Separator<Unit>>& separators,
            size_t size, size_t overlap, Output<TextT>& out, SplitScratch& scratch)
      : text_(text),
        measure_(measure),
        separators_(separators),
        size_(size),
        overlap_(overlap),
        out_(out),
        windows_(scratch.windows) {
    // One window per level of merging, allocated before any is in use:
    // growing the list later would move the windows from under the mergers.
    const size_t depth = separators.size() + Measure::kUnitLevels + 1;
    if (windows_.size() < depth) windows_.resize(depth);
  }

  void split(const Piece& p, size_t first) {
    // The first separator that is empty or occurs in the piece; deeper
    // levels see only the separators after it. One the text cannot hold
    // occurs nowhere, as re.search would find.
    const size_t n = separators_.size();
    size_t i = first, match = npos;
    for (; i < n; ++i) {
      const Separator<Unit>& sep = separators_[i];
      if (sep.is_empty()) return split_units(p, 0);
      if (!sep.representable) continue;
      match = text_.find(sep, p.byte_begin, p.byte_end);
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
    if constexpr (Measure::kUnitsAreCodePoints) {
      if (size_ > 1) return split_code_points(p);
    }
    merge([&](auto&& take) { measure_.for_each_unit(p, level, take); },
          [&](const Piece& big) {
            if (level + 1 < Measure::kUnitLevels)
              split_units(big, level + 1);
            else
              out_.add(big);
          });
  }

  // What merging single code points comes to, without a window: every piece
  // has length 1 < chunk_size, so a chunk is emitted whenever chunk_size of
  // them are collected and the next one arrives, after which pieces are
  // dropped from the front until min(overlap, chunk_size - 1) remain; the
  // last window is emitted at the end. So chunks of chunk_size code points
  // start every `step`, and the last one runs to the end of the piece.
  void split_code_points(const Piece& p) {
    const size_t step = size_ - std::min(overlap_, size_ - 1);
    size_t b = p.byte_begin, cp = p.begin;
    for (; p.end - cp > size_; cp += step) {
      out_.add_stripped(Piece{b, text_.advance(b, size_), cp, cp + size_});
      b = text_.advance(b, step);
    }
    if (cp < p.end) out_.add_stripped(Piece{b, p.byte_end, cp, p.end});
  }

  // Pieces shorter than chunk_size are merged; a longer one ends the run
  // of short ones and goes to `deeper`.
  template <class Generate, class Deeper>
  void merge(Generate&& generate, Deeper&& deeper) {
    Merger<Output<TextT>> merger(size_, overlap_, out_, windows_[depth_++]);
    generate([&](Piece piece) {
      const size_t len = measure_.length(piece);
      if (len < size_) {
        merger.push(piece, len);
        return;
      }
      merger.flush();
      deeper(piece);
    });
    merger.flush();
    --depth_;
  }

  // re.split with the separator kept at the start of each piece, empty
  // pieces dropped; matches do not overlap, as with re.split.
  template <class F>
  void split_at(const Piece& p, const Separator<Unit>& sep, size_t match, F&& f) const {
    const size_t sep_size = sep.units.size();
    size_t b = p.byte_begin, cp = p.begin;
    for (; match != npos; match = text_.find(sep, match + sep_size, p.byte_end)) {
      if (match == b) continue;  // only the first piece can be empty
      size_t end = cp + text_.count(b, match);
      f(Piece{b, match, cp, end});
      b = match;
      cp = end;
    }
    f(Piece{b, p.byte_end, cp, p.end});
  }

  const TextT& text_;
  const Measure& measure_;
  const std::vector<Separator<Unit>>& separators_;
  size_t size_;
  size_t overlap_;
  Output<TextT>& out_;
  std::vector<std::vector<SplitScratch::Entry>>& windows_;
  size_t depth_ = 0;
};

template <class TextT, class Measure, class Unit>
void run(const TextT& text, const Measure& measure, const std::vector<Separator<Unit>>& separators, size_t size,
         size_t overlap, std::vector<ChunkSpan>& chunks, SplitScratch& scratch) {
  const Piece whole = text.whole();
  if (whole.byte_end == 0) return;
  Output<TextT> out(text, chunks);
  // A text shorter than chunk_size is one chunk, stripped: each piece any
  // level could split it into is shorter still, and merging them never fills
  // a chunk before the end (code-point lengths add up; token counts need not,
  // so token mode takes the recursion). A quarter of CISI's abstracts, and
  // most issue notes, end here without a separator search.
  if constexpr (Measure::kUnitsAreCodePoints) {
    if (whole.end - whole.begin < size) return out.add_stripped(whole);
  }
  Recursion<TextT, Measure, Unit>(text, measure, separators, size, overlap, out, scratch).split(whole, 0);
}

// A separator (valid UTF-8) in units of Unit, for texts of a kind no wider
// than max_code_point.
template <class Unit>
Separator<Unit> fixed_width(const std::string& sep, char32_t max_code_point) {
  Separator<Unit> out;
  for (size_t b = 0; b < sep.size(); b += sequence_length(static_cast<unsigned char>(sep[b]))) {
    const char32_t c = decode_at(sep, b);
    if (c > max_code_point) return {{}, false};
    out.units.push_back(static_cast<Unit>(c));
  }
  return out;
}

}  // namespace

RecursiveSplitter::RecursiveSplitter(std::vector<std::string> separators, long long chunk_size,
                                     long long chunk_overlap) {
  if (chunk_size <= 0)
    throw std::invalid_argument("chunk_size must be > 0, got " + std::to_string(chunk_size));
  if (chunk_overlap < 0)
    throw std::invalid_argument("chunk_overlap must be >= 0, got " + std::to_string(chunk_overlap));
  if (chunk_overlap > chunk_size)
    throw std::invalid_argument("chunk_overlap (" + std::to_string(chunk_overlap) +
                                ") must not exceed chunk_size (" + std::to_string(chunk_size) + ")");
  if (separators.empty()) throw std::invalid_argument("separators must not be empty");
  for (const std::string& sep : separators) {
    checked_utf8(sep);
    utf8_.push_back({std::vector<uint8_t>(sep.begin(), sep.end()), true});
    latin1_.push_back(fixed_width<uint8_t>(sep, 0xFF));
    ucs2_.push_back(fixed_width<uint16_t>(sep, 0xFFFF));
    ucs4_.push_back(fixed_width<uint32_t>(sep, 0x10FFFF));
  }
  chunk_size_ = static_cast<size_t>(chunk_size);
  chunk_overlap_ = static_cast<size_t>(chunk_overlap);
}

std::vector<ChunkSpan> RecursiveSplitter::split_chars(std::string_view text) const {
  return split_chars(checked_utf8(text));
}

std::vector<ChunkSpan> RecursiveSplitter::split_chars(const Utf8View& text) const {
  std::vector<ChunkSpan> chunks;
  SplitScratch scratch;
  split_chars(text, chunks, scratch);
  return chunks;
}

void RecursiveSplitter::split_chars(const Utf8View& text, std::vector<ChunkSpan>& out,
                                    SplitScratch& scratch) const {
  if (text.ascii()) {
    const FixedText<uint8_t> t(reinterpret_cast<const uint8_t*>(text.bytes.data()), text.bytes.size());
    return run(t, CharMeasure(t), utf8_, chunk_size_, chunk_overlap_, out, scratch);
  }
  const Utf8Text t(text);
  run(t, CharMeasure(t), utf8_, chunk_size_, chunk_overlap_, out, scratch);
}

void RecursiveSplitter::split_chars(FixedView<uint8_t> text, std::vector<ChunkSpan>& out,
                                    SplitScratch& scratch) const {
  const FixedText<uint8_t> t(text.data, text.size);
  run(t, CharMeasure(t), latin1_, chunk_size_, chunk_overlap_, out, scratch);
}

void RecursiveSplitter::split_chars(FixedView<uint16_t> text, std::vector<ChunkSpan>& out,
                                    SplitScratch& scratch) const {
  const FixedText<uint16_t> t(text.data, text.size);
  run(t, CharMeasure(t), ucs2_, chunk_size_, chunk_overlap_, out, scratch);
}

void RecursiveSplitter::split_chars(FixedView<uint32_t> text, std::vector<ChunkSpan>& out,
                                    SplitScratch& scratch) const {
  const FixedText<uint32_t> t(text.data, text.size);
  run(t, CharMeasure(t), ucs4_, chunk_size_, chunk_overlap_, out, scratch);
}

std::vector<ChunkSpan> RecursiveSplitter::split_tokens(std::string_view text, const Tokens& tokens) const {
  return split_tokens(checked_utf8(text), tokens);
}

std::vector<ChunkSpan> RecursiveSplitter::split_tokens(const Utf8View& text, const Tokens& tokens) const {
  std::vector<ChunkSpan> chunks;
  SplitScratch scratch;
  if (text.ascii()) {
    const FixedText<uint8_t> t(reinterpret_cast<const uint8_t*>(text.bytes.data()), text.bytes.size());
    run(t, TokenMeasure(t, tokens, text.code_points), utf8_, chunk_size_, chunk_overlap_, chunks, scratch);
  } else {
    const Utf8Text t(text);
    run(t, TokenMeasure(t, tokens, text.code_points), utf8_, chunk_size_, chunk_overlap_, chunks, scratch);
  }
  return chunks;
}

}  // namespace ragd
