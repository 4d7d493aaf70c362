"""Text -> typed expression -> core IR: the grammar, declarations and shapes, lowering."""
