package dev.edgekit.core

import java.text.Normalizer

/**
 * BERT's tokenizer as Hugging Face `tokenizers` runs it (BertNormalizer, BertPreTokenizer,
 * WordPiece, then `[CLS] text [SEP]`), so the ids an app feeds the model are the ids the model
 * was trained and exported with. Settings come from edgekit-app.json's "tokenizer" section.
 */
class WordPieceTokenizer(
    private val vocab: Map<String, Int>,
    private val lowercase: Boolean = true,
    stripAccents: Boolean? = null,
    private val handleChineseChars: Boolean = true,
    private val prefix: String = "##",
    private val maxInputCharsPerWord: Int = 100,
    private val cls: String = "[CLS]",
    private val sep: String = "[SEP]",
    private val unk: String = "[UNK]",
) {
    private val stripAccents = stripAccents ?: lowercase
    private val unkId = vocab[unk] ?: error("the vocabulary has no $unk")

    /** Token ids of one text with the special tokens, at most [maxLength] of them. */
    fun encode(text: String, maxLength: Int = Int.MAX_VALUE): IntArray {
        val ids = ArrayList<Int>()
        ids.add(vocab.getValue(cls))
        for (word in preTokenize(normalize(text))) ids.addAll(wordPiece(word))
        if (ids.size > maxLength - 1) ids.subList(maxLength - 1, ids.size).clear()
        ids.add(vocab.getValue(sep))
        return ids.toIntArray()
    }

    fun normalize(text: String): String {
        val out = StringBuilder()
        text.codePoints().forEach { cp ->
            when {
                cp == 0 || cp == 0xFFFD || isControl(cp) -> {}
                isWhitespace(cp) -> out.append(' ')
                handleChineseChars && isChinese(cp) -> out.append(' ').appendCodePoint(cp).append(' ')
                else -> out.appendCodePoint(cp)
            }
        }
        var s = out.toString()
        if (stripAccents) {
            s = Normalizer.normalize(s, Normalizer.Form.NFD).filter { Character.getType(it) != Character.NON_SPACING_MARK.toInt() }
        }
        if (lowercase) {
            // one code point at a time: Rust's to_lowercase has no final-sigma rule, Java's String has
            val low = StringBuilder()
            s.codePoints().forEach { low.append(String(Character.toChars(it)).lowercase(java.util.Locale.ROOT)) }
            s = low.toString()
        }
        return s
    }

    /** Split on whitespace, and every punctuation character on its own. */
    fun preTokenize(text: String): List<String> {
        val words = ArrayList<String>()
        val word = StringBuilder()
        fun flush() {
            if (word.isNotEmpty()) { words.add(word.toString()); word.setLength(0) }
        }
        text.codePoints().forEach { cp ->
            when {
                isWhitespace(cp) -> flush()
                isPunctuation(cp) -> { flush(); words.add(String(Character.toChars(cp))) }
                else -> word.appendCodePoint(cp)
            }
        }
        flush()
        return words
    }

    /** Greedy longest-match-first pieces of one word; the unknown token if any part has no piece. */
    fun wordPiece(word: String): List<Int> {
        val cps = word.codePoints().toArray()
        if (cps.size > maxInputCharsPerWord) return listOf(unkId)
        val pieces = ArrayList<Int>()
        var start = 0
        while (start < cps.size) {
            var end = cps.size
            var found: Int? = null
            while (start < end) {
                val piece = (if (start > 0) prefix else "") + String(cps, start, end - start)
                val id = vocab[piece]
                if (id != null) { found = id; break }
                end--
            }
            if (found == null) return listOf(unkId)
            pieces.add(found)
            start = end
        }
        return pieces
    }

    companion object {
        /** The vocabulary of a parsed tokenizer.json (its "model" section). */
        fun vocabOf(tokenizerJson: Map<String, Any?>): Map<String, Int> =
            tokenizerJson["model"].obj()["vocab"].obj().mapValues { (it.value as Number).toInt() }

        /** The vocabulary of a vocab.txt: one token per line, the line number its id. */
        fun vocabOf(vocabLines: List<String>): Map<String, Int> =
            vocabLines.withIndex().associate { (i, line) -> line.trimEnd('\r', '\n') to i }

        /** From edgekit-app.json's "tokenizer" section and the vocabulary. */
        fun fromApp(section: Map<String, Any?>, vocab: Map<String, Int>): WordPieceTokenizer {
            require(section["type"] == "WordPiece") { "this tokenizer is ${section["type"]}, not WordPiece" }
            val special = section["special_tokens"].obj()
            fun token(role: String, default: String) = (special[role] as Map<*, *>?)?.get("token") as String? ?: default
            return WordPieceTokenizer(
                vocab,
                lowercase = section["lowercase"] as Boolean? ?: true,
                stripAccents = section["strip_accents"] as Boolean?,
                handleChineseChars = section["handle_chinese_chars"] as Boolean? ?: true,
                prefix = section["continuing_subword_prefix"] as String? ?: "##",
                maxInputCharsPerWord = (section["max_input_chars_per_word"] as Number?)?.toInt() ?: 100,
                cls = token("cls", "[CLS]"),
                sep = token("sep", "[SEP]"),
                unk = token("unk", "[UNK]"),
            )
        }

        private fun isWhitespace(cp: Int): Boolean =
            cp == ' '.code || cp == '\t'.code || cp == '\n'.code || cp == '\r'.code ||
                Character.getType(cp) == Character.SPACE_SEPARATOR.toInt() ||
                cp in 0x09..0x0D || cp == 0x85 || cp == 0x2028 || cp == 0x2029

        private fun isControl(cp: Int): Boolean {
            if (cp == '\t'.code || cp == '\n'.code || cp == '\r'.code) return false
            return when (Character.getType(cp)) {
                Character.CONTROL.toInt(), Character.FORMAT.toInt(), Character.UNASSIGNED.toInt(),
                Character.PRIVATE_USE.toInt(), Character.SURROGATE.toInt() -> !isWhitespace(cp)
                else -> false
            }
        }

        private fun isPunctuation(cp: Int): Boolean {
            if (cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126) return true
            return when (Character.getType(cp)) {
                Character.CONNECTOR_PUNCTUATION.toInt(), Character.DASH_PUNCTUATION.toInt(),
                Character.START_PUNCTUATION.toInt(), Character.END_PUNCTUATION.toInt(),
                Character.INITIAL_QUOTE_PUNCTUATION.toInt(), Character.FINAL_QUOTE_PUNCTUATION.toInt(),
                Character.OTHER_PUNCTUATION.toInt() -> true
                else -> false
            }
        }

        private fun isChinese(cp: Int): Boolean =
            cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0x20000..0x2A6DF ||
                cp in 0x2A700..0x2B73F || cp in 0x2B740..0x2B81F || cp in 0x2B920..0x2CEAF ||
                cp in 0xF900..0xFAFF || cp in 0x2F800..0x2FA1F
    }
}
