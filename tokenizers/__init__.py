"""savg.tokenizers"""
