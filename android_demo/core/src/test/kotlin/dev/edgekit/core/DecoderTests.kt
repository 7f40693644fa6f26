package dev.edgekit.core

import java.io.File
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The chat screen's core against a real byte-level BPE model (SmolLM2): the spec's "decoder"
 * section names its tokenizer.json, real texts with Hugging Face's ids and decoded text,
 * conversations with apply_chat_template's ids, the app's chat pieces, and golden greedy tokens
 * with each step's largest logits, recorded from the PyTorch model.
 */
fun decoderTests(spec: Map<String, Any?>): Map<String, () -> Unit> {
    val tokenizer = ByteLevelBpeTokenizer.fromTokenizerJson(Json.parse(File(spec["tokenizer"] as String).readText()).obj())
    val texts = spec["texts"].list().map { it.obj() }
    val golden = Json.parse(File(spec["golden"] as String).readText()).obj()
    val eos = spec["eos_token_ids"].ints().toSet()
    return linkedMapOf(
        "byte-level BPE ids equal Hugging Face tokenizers on real texts" to {
            val wrong = texts.filter { !tokenizer.encode(it["text"] as String).contentEquals(it["ids"].ints()) }
            assertTrue(texts.size >= 100, "only ${texts.size} texts")
            assertTrue(wrong.isEmpty(), "${wrong.size} of ${texts.size} differ, first: ${wrong.firstOrNull()?.get("text")}")
        },
        "byte-level BPE decodes ids to Hugging Face's text" to {
            val wrong = texts.filter { tokenizer.decode(it["ids"].ints()) != it["decoded"] }
            assertTrue(wrong.isEmpty(), "${wrong.size} of ${texts.size} differ, first: ${wrong.firstOrNull()?.get("text")}")
        },
        "a conversation through the app's chat pieces tokenizes as apply_chat_template" to {
            val chat = ChatFormat.fromApp(spec["chat"].obj())
            for (case in spec["chats"].list().map { it.obj() }) {
                val messages = case["messages"].list().map { it.list().let { m -> (m[0] as String) to (m[1] as String) } }
                assertContentEquals(case["ids"].ints(), tokenizer.encode(chat.render(messages), withSpecialTokens = false))
            }
        },
        "the generation loop reproduces the recorded greedy tokens from the recorded logits" to {
            val cases = golden["cases"].list().map { it.obj() }
            assertTrue(cases.isNotEmpty())
            for (case in cases) {
                val prompt = tokenizer.encode(case["text"] as String)
                assertContentEquals(case["input_ids"].ints(), prompt)
                val steps = case["steps"].list().map { it.obj() }
                val engine = RecordedDecoder(steps, prompt.size, vocab = (spec["vocab_size"] as Number).toInt())
                val shown = StringBuilder()
                val stream = TextStream({ tokenizer.decode(it) }) { shown.append(it) }
                val tokens = Generator(engine, eos).generate(prompt, steps.size, onToken = stream::onToken)
                val want = case["greedy_tokens"].ints()
                assertContentEquals(want, tokens)
                assertEquals(tokenizer.decode(want), stream.text)
                assertTrue(stream.text.startsWith(shown.toString()), "streamed '$shown' is not a prefix of '${stream.text}'")
            }
        },
    )
}

/**
 * The real model's recorded logits, replayed: step i returns the largest logits PyTorch gave at
 * that step (the rest of the vocabulary at -inf), and checks that the loop feeds each position in turn.
 */
class RecordedDecoder(private val steps: List<Map<String, Any?>>, private val promptLength: Int, private val vocab: Int) : DecoderEngine {
    override val maxSeqLen = promptLength + steps.size + 1
    private var filled = 0

    override fun reset() { filled = 0 }

    private fun logits(step: Int): FloatArray {
        val out = FloatArray(vocab) { Float.NEGATIVE_INFINITY }
        val ids = steps[step]["ids"].ints()
        val values = steps[step]["logits"].floats()
        ids.indices.forEach { out[ids[it]] = values[it] }
        return out
    }

    override fun prefill(tokens: IntArray): FloatArray {
        check(tokens.size == promptLength) { "prefill of ${tokens.size} tokens, the prompt has $promptLength" }
        filled = tokens.size
        return logits(0)
    }

    override fun step(token: Int, position: Int): FloatArray {
        check(position == filled) { "step at $position, the cache holds $filled" }
        filled++
        return logits(position - promptLength + 1)
    }
}
