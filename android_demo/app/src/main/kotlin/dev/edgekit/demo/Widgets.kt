package dev.edgekit.demo

import android.content.Context
import android.view.View
import android.widget.LinearLayout
import android.widget.RadioButton
import android.widget.RadioGroup
import android.widget.ScrollView

/** The runtime switch both screens start with; [runtime] reads the choice as edgekit-app.json names it. */
class RuntimePicker(context: Context, executorchFirst: Boolean) {
    val view = RadioGroup(context).apply {
        orientation = RadioGroup.HORIZONTAL
        addView(RadioButton(context).apply { id = ORT; text = "ONNX Runtime"; isChecked = !executorchFirst })
        addView(RadioButton(context).apply { id = EXECUTORCH; text = "ExecuTorch"; isChecked = executorchFirst })
    }

    val runtime: String get() = if (view.checkedRadioButtonId == EXECUTORCH) "executorch" else "ort"

    private companion object {
        const val ORT = 1
        const val EXECUTORCH = 2
    }
}

/** [views] one under the other, padded, scrolling. */
fun column(context: Context, vararg views: View): ScrollView {
    val layout = LinearLayout(context).apply {
        orientation = LinearLayout.VERTICAL
        setPadding(32, 32, 32, 32)
        views.forEach { addView(it) }
    }
    return ScrollView(context).apply { addView(layout) }
}
