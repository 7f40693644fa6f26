package dev.edgekit.core

import java.io.ByteArrayOutputStream
import java.util.regex.Pattern

/**
 * The byte-level BPE tokenizer of GPT-2, Llama 3, SmolLM2 and Qwen as Hugging Face `tokenizers`
 * runs it from tokenizer.json: added tokens (`<|im_start|>`, ...) matched first, the rest split by
 * the GPT-2 pattern, each piece's UTF-8 bytes mapped to printable characters, merged by rank, then
 * the post-processor's special tokens (a BOS, where the template has one).
 */
class ByteLevelBpeTokenizer(
    private val vocab: Map<String, Int>,
    merges: List<Pair<String, String>>,
    private val addedTokens: Map<String, Int>,
    private val specialIds: Set<Int>,
    private val prefixIds: IntArray = IntArray(0),
    private val suffixIds: IntArray = IntArray(0),
) {
    private val ranks = HashMap<Pair<String, String>, Int>(merges.size * 2).apply {
        merges.forEachIndexed { rank, pair -> putIfAbsent(pair, rank) }
    }
    private val tokens: Map<Int, String> = (vocab.entries.associate { it.value to it.key } + addedTokens.entries.associate { it.value to it.key })
    private val added = addedTokens.keys.sortedByDescending { it.length }
    private val cache = HashMap<String, IntArray>()

    /** Token ids of [text], with the template's special tokens around them. */
    fun encode(text: String, withSpecialTokens: Boolean = true): IntArray {
        val ids = ArrayList<Int>()
        if (withSpecialTokens) prefixIds.forEach { ids.add(it) }
        var start = 0
        while (start < text.length) {
            val (at, token) = nextAdded(text, start)
            val end = at ?: text.length
            if (end > start) encodePlain(text.substring(start, end), ids)
            if (token == null) break
            ids.add(addedTokens.getValue(token))
            start = end + token.length
        }
        if (withSpecialTokens) suffixIds.forEach { ids.add(it) }
        return ids.toIntArray()
    }

    /** The text of [ids]; special tokens dropped when [skipSpecial]. Bytes that are not UTF-8 yet become U+FFFD. */
    fun decode(ids: IntArray, skipSpecial: Boolean = true): String {
        val bytes = ByteArrayOutputStream()
        val text = StringBuilder()
        fun flush() { text.append(bytes.toByteArray().toString(Charsets.UTF_8)); bytes.reset() }
        for (id in ids) {
            val token = tokens[id] ?: continue
            if (token in addedTokens) {
                if (skipSpecial && id in specialIds) continue
                flush(); text.append(token); continue
            }
            for (c in token) bytes.write(CHAR_TO_BYTE[c] ?: continue)
        }
        flush()
        return text.toString()
    }

    private fun nextAdded(text: String, from: Int): Pair<Int?, String?> {
        var best: Int? = null
        var found: String? = null
        for (token in added) {  // longest first: at one position the longest token wins
            val at = text.indexOf(token, from)
            if (at >= 0 && (best == null || at < best)) { best = at; found = token }
        }
        return best to found
    }

    private fun encodePlain(text: String, out: MutableList<Int>) {
        val m = PATTERN.matcher(text)
        while (m.find()) {
            val piece = m.group()
            val mapped = StringBuilder()
            for (b in piece.toByteArray(Charsets.UTF_8)) mapped.append(BYTE_TO_CHAR[b.toInt() and 0xFF])
            val word = mapped.toString()
            cache.getOrPut(word) { bpe(word) }.forEach { out.add(it) }
        }
    }

    /** Merge the lowest-ranked adjacent pair, everywhere it occurs, until no pair has a rank. */
    private fun bpe(word: String): IntArray {
        var parts = word.map { it.toString() }
        while (parts.size > 1) {
            var best = -1
            var bestRank = Int.MAX_VALUE
            for (i in 0 until parts.size - 1) {
                val rank = ranks[parts[i] to parts[i + 1]] ?: continue
                if (rank < bestRank) { bestRank = rank; best = i }
            }
            if (best < 0) break
            val (a, b) = parts[best] to parts[best + 1]
            val merged = ArrayList<String>(parts.size)
            var i = 0
            while (i < parts.size) {
                if (i < parts.size - 1 && parts[i] == a && parts[i + 1] == b) { merged.add(a + b); i += 2 } else { merged.add(parts[i]); i++ }
            }
            parts = merged
        }
        return parts.map { vocab[it] ?: error("'$it' is not in the vocabulary") }.toIntArray()
    }

    companion object {
        /** GPT-2's split: contractions, letters, numbers, other symbols (each with one leading space), whitespace. */
        val PATTERN: Pattern = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS,
        )

        /** Each byte as a printable character: printable Latin-1 bytes as themselves, the rest from U+0100 on. */
        val BYTE_TO_CHAR: CharArray = CharArray(256).also { table ->
            var next = 256
            for (b in 0 until 256) {
                val printable = b in '!'.code..'~'.code || b in 0xA1..0xAC || b in 0xAE..0xFF
                table[b] = if (printable) b.toChar() else (next++).toChar()
            }
        }
        val CHAR_TO_BYTE: Map<Char, Int> = BYTE_TO_CHAR.withIndex().associate { it.value to it.index }

        /** From tokenizer.json (parsed): its BPE vocabulary and merges, added tokens and post-processor. */
        fun fromTokenizerJson(json: Map<String, Any?>): ByteLevelBpeTokenizer {
            val model = json["model"].obj()
            require(model["type"] == "BPE") { "tokenizer.json holds a ${model["type"]} model, not BPE" }
            val vocab = model["vocab"].obj().mapValues { (it.value as Number).toInt() }
            val merges = model["merges"].list().map { merge ->
                if (merge is String) merge.substringBefore(' ') to merge.substringAfter(' ')
                else merge.list().let { (it[0] as String) to (it[1] as String) }
            }
            val addedList = (json["added_tokens"] as List<*>?).orEmpty().map { it.obj() }
            val added = addedList.associate { it["content"] as String to (it["id"] as Number).toInt() }
            val special = addedList.filter { it["special"] == true }.map { (it["id"] as Number).toInt() }.toSet()
            val (prefix, suffix) = templateIds(json["post_processor"]?.obj(), added + vocab)
            return ByteLevelBpeTokenizer(vocab, merges, added, special, prefix, suffix)
        }

        /** The special tokens a TemplateProcessing post-processor puts before and after a single text. */
        private fun templateIds(post: Map<String, Any?>?, ids: Map<String, Int>): Pair<IntArray, IntArray> {
            val single = post?.takeIf { it["type"] == "TemplateProcessing" }?.get("single")?.list() ?: return IntArray(0) to IntArray(0)
            val before = ArrayList<Int>()
            val after = ArrayList<Int>()
            var seen = false
            for (piece in single.map { it.obj() }) {
                val special = piece["SpecialToken"]?.obj()
                if (special == null) { seen = true; continue }
                (if (seen) after else before).add(ids.getValue(special["id"] as String))
            }
            return before.toIntArray() to after.toIntArray()
        }
    }
}
